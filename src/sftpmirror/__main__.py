from sftpmirror.cli.app import main

main()
