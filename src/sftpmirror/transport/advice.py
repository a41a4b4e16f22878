"""What doctor says of a server's profile: each way it differs from OpenSSH's sftp-server,
what that costs the user, and the fix in the words of the server's own software (ProFTPD
directives for ProFTPD, rclone flags for rclone, internal-sftp flags for OpenSSH)."""

from __future__ import annotations

from dataclasses import dataclass

from sftpmirror.findings import INFO, OK, WARNING
from sftpmirror.transport.profile import Profile


@dataclass(frozen=True, slots=True)
class Finding:
    status: str
    detail: str
    fix: str | None = None


def software(profile: Profile) -> str:
    """The server software, from its SSH version string."""
    banner = profile.software.lower()
    for needle, name in (
        ("mod_sftp", "ProFTPD"),
        ("openssh", "OpenSSH"),
        ("rclone", "rclone"),
        ("dropbear", "Dropbear"),
        ("paramiko", "paramiko"),
        ("asyncssh", "AsyncSSH"),
    ):
        if needle in banner:
            return name
    return "unknown"


_FIXES = {
    ("ProFTPD", "chmod"): "remove 'SFTPOptions IgnoreSFTPSetPerms' and any "
    "'<Limit SITE_CHMOD> DenyAll' from proftpd.conf (or its <VirtualHost>)",
    ("ProFTPD", "mtimes"): "remove 'SFTPOptions IgnoreSFTPSetTimes' from proftpd.conf",
    ("OpenSSH", "chmod"): "remove 'setstat' and 'fsetstat' from the internal-sftp -P list",
    ("OpenSSH", "mtimes"): "remove 'setstat' and 'fsetstat' from the internal-sftp -P list",
    ("rclone", "chmod"): "rclone serve sftp keeps fixed modes (--file-perms, --dir-perms): "
    "set --file-perms 0644 --dir-perms 0755",
    ("rclone", "sequential"): "run rclone serve sftp with --vfs-cache-mode writes",
}


def findings(profile: Profile) -> list[Finding]:
    """One finding per difference (costs and fixes); one OK line where there is none."""
    if not profile.probed:
        why = "; ".join(profile.notes) or "the probe could not run"
        return [Finding(INFO, f"server profile unknown: {why}")]
    name = software(profile)
    found: list[Finding] = []

    def fix(what: str) -> str | None:
        return _FIXES.get((name, what))

    if profile.chmod_refused or profile.chmod is False:
        how = "refuses" if profile.chmod_refused else "acknowledges and ignores"
        made = (
            "files are created with their final mode"
            if profile.create_mode
            else f"files get the server's mode ({(profile.default_mode or 0):03o})"
        )
        found.append(
            Finding(
                WARNING,
                f"{name} {how} chmod: {made}; a file whose mode differs is uploaded again, and "
                "a mode the server cannot make fails the run",
                fix("chmod"),
            )
        )
    if profile.mtimes is False:
        found.append(
            Finding(
                WARNING,
                f"{name} ignores the mtimes it is sent: the manifest records the server's own; "
                "without a manifest (--no-manifest) every run uploads every file again",
                fix("mtimes"),
            )
        )
    if profile.sequential_writes:
        found.append(
            Finding(
                WARNING,
                f"{name} takes writes in order only: one chunk in flight per file (slower "
                "uploads of large files)",
                fix("sequential"),
            )
        )
    if profile.posix_rename and not profile.posix_rename_advertised:
        found.append(Finding(INFO, "posix-rename works though it is not advertised: used"))
    if profile.hardlink is False:
        found.append(
            Finding(
                INFO,
                "no working hardlink@openssh.com: a deploy keeps the files it replaces by "
                "renaming them into its backup, each name missing for one round trip (keep = 0: "
                "atomic replaces, no backups); a rollback moves them back",
            )
        )
    if not profile.limits:
        found.append(
            Finding(
                INFO,
                f"no limits@openssh.com: at most {profile.max_handles} files and directories "
                f"open at once, writes of {profile.max_write // 1024} KiB, reads as large as the "
                "server answers whole (learnt on the first large file, at most 256 KiB)",
            )
        )
    for note in profile.notes:
        found.append(Finding(INFO, note))
    if not found:
        found.append(Finding(OK, f"{name}: chmod, mtimes and out-of-order writes take effect"))
    return found
