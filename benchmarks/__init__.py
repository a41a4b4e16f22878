"""Benchmark harness: sftpmirror against lftp, rclone and OpenSSH's sftp.

Run it from the repository root, as root (the OpenSSH fixture needs it)::

    python -m benchmarks.run --quick

See ``benchmarks/README.md`` for the scenarios, the flags and the caveats.
"""
