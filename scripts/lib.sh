# Shell helpers shared by scripts/test.sh and scripts/check-deploy.sh (sourced).

# Run as root directly, otherwise through sudo when it is there.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        return 1
    fi
}

# apt-get install quietly; `apt-get update` only when the first try fails.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -qq "$@" >/dev/null 2>&1; then
        echo "apt-get install $* failed; running apt-get update and retrying" >&2
        as_root apt-get update -qq >/dev/null
        as_root apt-get install -y -qq "$@" >/dev/null
    fi
}
