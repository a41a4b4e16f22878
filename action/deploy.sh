#!/usr/bin/env bash
# The work of the GitHub Action (action.yml), runnable anywhere: `sftpmirror push --json`, then
# the action's outputs, step summary and annotations from its summary object (action/helper.py).
#
# Inputs come as environment variables, as action.yml's deploy step sets them:
#   INPUT_URL          destination: sftp://user@host[:port]/path or user@host:path
#   INPUT_TARGET       or a target of sftpmirror.toml (exactly one of the two)
#   INPUT_SOURCE       local directory (default public; with a target, the target's source)
#   INPUT_KNOWN_HOSTS  content of a known_hosts file (required with INPUT_URL)
#   INPUT_DELETE       true / false / empty (--delete / --no-delete / with url --delete, with
#                      a target what its delete key says)
#   INPUT_DRY_RUN      true / false
#   INPUT_ARGS         more sftpmirror flags, split like a shell would
#   INPUT_CONFIG       sftpmirror.toml to read (default: the nearest one up from here)
# The password is never read here: sftpmirror takes it from SFTPMIRROR_PASSWORD, which it
# inherits (or from the target's password_env / password_file / password_command).
# Writes to $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY when set; exits with sftpmirror's code,
# or 2 for bad inputs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
helper() { python3 "$here/helper.py" "$@"; }
invalid() { helper invalid "$1"; exit 2; }

boolean() { # NAME VALUE: "true", "false" or "" (not given), in $REPLY
  REPLY=${2,,}
  [[ $REPLY == true || $REPLY == false || -z $REPLY ]] || invalid "$1 must be true or false, not '$2'"
}

umask 077
work=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/sftpmirror-action.XXXXXX")
trap 'rm -rf "$work"' EXIT

url=${INPUT_URL:-}
target=${INPUT_TARGET:-}
source_dir=${INPUT_SOURCE:-}
known_hosts=${INPUT_KNOWN_HOSTS:-}
boolean delete "${INPUT_DELETE:-}" && delete=$REPLY
boolean dry-run "${INPUT_DRY_RUN:-}" && dry_run=$REPLY
extra=()
if [[ -n ${INPUT_ARGS:-} ]]; then
  helper split-args "$INPUT_ARGS" "$work/args" || exit 2
  mapfile -d '' extra <"$work/args"
fi

if [[ -n $url && -n $target ]]; then
  invalid "give url or target, not both"
elif [[ -z $url && -z $target ]]; then
  invalid "give url (sftp://user@host/path) or target (a target of sftpmirror.toml)"
elif [[ -n $target && -n $source_dir ]]; then
  invalid "with target, the local directory is the target's source key: give no source"
fi
if [[ -n $url && -z ${known_hosts//[[:space:]]/} ]]; then
  host_keys_given=false
  for word in "${extra[@]}"; do
    [[ $word == --known-hosts* || $word == --accept-new-host-key ]] && host_keys_given=true
  done
  [[ $host_keys_given == true ]] ||
    invalid "known_hosts is required with url: the host's key line, from ssh-keyscan (see docs/ci.md)"
fi

cmd=(sftpmirror push --json)
[[ -n ${INPUT_CONFIG:-} ]] && cmd+=(--config "$INPUT_CONFIG")
if [[ -n ${known_hosts//[[:space:]]/} ]]; then
  printf '%s\n' "$known_hosts" >"$work/known_hosts"
  chmod 600 "$work/known_hosts"
  cmd+=(--known-hosts "$work/known_hosts")
fi
if [[ -z $delete && -n $url ]]; then delete=true; fi  # lftp mirror -Rev's habit
case $delete in
  true) cmd+=(--delete) ;;
  false) cmd+=(--no-delete) ;;
esac
if [[ $dry_run == true ]]; then cmd+=(--dry-run); fi
cmd+=("${extra[@]}" --)
if [[ -n $url ]]; then
  cmd+=("${source_dir:-public}" "$url")
else
  cmd+=("$target")
fi

printf 'sftpmirror-action: running:' >&2
printf ' %q' "${cmd[@]}" >&2
printf '\n' >&2
code=0
"${cmd[@]}" >"$work/summary.json" || code=$?
helper report "$code" "$work/summary.json"
exit "$code"
