from sftpmirror.cli import main

main()
