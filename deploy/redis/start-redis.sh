#!/bin/sh
# Start redis-server with tradewire's ACL users (users.acl.template): each user's password
# is read from a file (compose secrets: /run/secrets/redis_<user>_password), only its
# SHA-256 goes into the rendered ACL file, and no password is on a command line or in the
# environment. Arguments are redis-server's (a leading "redis-server" is dropped).
#   RENDER_ONLY=1 start-redis.sh  writes the ACL file and exits (the tests use this).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SECRETS_DIR=${REDIS_SECRETS_DIR:-/run/secrets}
ACL_FILE=${REDIS_ACL_FILE:-/tmp/tradewire-users.acl}

sha256_of() {
    file="$SECRETS_DIR/redis_$1_password"
    if [ ! -s "$file" ]; then
        echo "start-redis.sh: $file is missing or empty (see README, Least privilege)" >&2
        exit 1
    fi
    # The password is the file's first line, without its newline.
    head -n 1 "$file" | tr -d '\r\n' | sha256sum | cut -d ' ' -f 1
}

admin=$(sha256_of admin)
service=$(sha256_of service)
consumer=$(sha256_of consumer)
umask 077
sed -e "s/@ADMIN_SHA256@/$admin/" -e "s/@SERVICE_SHA256@/$service/" \
    -e "s/@CONSUMER_SHA256@/$consumer/" "$HERE/users.acl.template" \
    | grep -v '^#' | grep -v '^$' > "$ACL_FILE"
# A replica (and a primary that comes back as one after a failover) authenticates to its
# primary as the administrator: that password is in a config file, not on a command line.
CONF_FILE=${REDIS_CONF_FILE:-/tmp/tradewire-redis.conf}
printf 'masterauth %s\n' "$(head -n 1 "$SECRETS_DIR/redis_admin_password" | tr -d '\r\n')" > "$CONF_FILE"
[ "${RENDER_ONLY:-0}" = 1 ] && exit 0
[ "${1:-}" = redis-server ] && shift
# In the official image, its entrypoint drops root for the redis user, who must read them.
if command -v docker-entrypoint.sh >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] && chown redis "$ACL_FILE" "$CONF_FILE"
    exec docker-entrypoint.sh redis-server "$CONF_FILE" --aclfile "$ACL_FILE" "$@"
fi
exec redis-server "$CONF_FILE" --aclfile "$ACL_FILE" "$@"
