# Sourced by scripts/teststack.sh: 2. the Docker engine (dockerd without systemd, containerd image store)

DAEMON_JSON=/etc/docker/daemon.json
DAEMON_SETTINGS='{"features": {"containerd-snapshotter": true}, "bridge": "none", "iptables": false, "ip6tables": false}'

# Merge our settings into daemon.json (keeping anything else). Returns 0 if
# the file changed.
write_daemon_json() {
    local current merged
    mkdir -p /etc/docker
    current='{}'
    if [[ -s $DAEMON_JSON ]]; then
        current=$(jq -c . "$DAEMON_JSON") || die "$DAEMON_JSON is not valid JSON"
    fi
    merged=$(jq -n --argjson a "$current" --argjson b "$DAEMON_SETTINGS" '$a * $b')
    if [[ -s $DAEMON_JSON ]] && [[ $(jq -S . <<<"$current") == $(jq -S . <<<"$merged") ]]; then
        return 1
    fi
    jq . <<<"$merged" >"$DAEMON_JSON.tmp" && mv "$DAEMON_JSON.tmp" "$DAEMON_JSON"
    log "wrote $DAEMON_JSON"
    return 0
}

docker_up() { docker info >/dev/null 2>&1; }

start_dockerd() {
    local changed=1
    write_daemon_json && changed=0
    if docker_up; then
        if ((changed == 0)); then
            if pid_alive "$RUN_DIR/dockerd.pid"; then
                log "daemon.json changed: restarting dockerd"
                stop_dockerd
            else
                die "daemon.json changed but dockerd was not started by this script; restart it yourself"
            fi
        else
            log "dockerd: already running"
            return 0
        fi
    fi
    # A stale pid file from a killed dockerd makes the next one refuse to start.
    if [[ -f /var/run/docker.pid ]] && ! pid_alive /var/run/docker.pid; then
        rm -f /var/run/docker.pid
    fi
    # dockerd runs its own managed containerd (under /var/run/docker/containerd)
    # when no system containerd listens on /run/containerd/containerd.sock;
    # Debian's containerd package is installed but, without systemd, not
    # started, so the managed one is used and stops together with dockerd.
    log "dockerd: starting (log: $LOG_DIR/dockerd.log)"
    daemonize "$RUN_DIR/dockerd.pid" "$LOG_DIR/dockerd.log" /usr/sbin/dockerd
    if ! wait_for "$TIMEOUT" "dockerd" "$RUN_DIR/dockerd.pid" docker_up; then
        tail -n 30 "$LOG_DIR/dockerd.log" >&2
        die "dockerd did not answer 'docker info' within ${TIMEOUT}s; see $LOG_DIR/dockerd.log"
    fi
    [[ $(docker info --format '{{.Driver}}') == overlayfs ]] ||
        log "warning: storage driver is $(docker info --format '{{.Driver}}'), expected the containerd snapshotter (overlayfs)"
}

stop_dockerd() {
    if pid_alive "$RUN_DIR/dockerd.pid"; then
        stop_pidfile "$RUN_DIR/dockerd.pid" dockerd
    elif docker_up; then
        log "dockerd is running but was not started by this script; leaving it"
    else
        log "dockerd is not running"
        rm -f "$RUN_DIR/dockerd.pid"
    fi
}

check_buildx() {
    docker buildx version >/dev/null 2>&1 ||
        die "'docker buildx version' fails: is docker-buildx in /usr/libexec/docker/cli-plugins?"
}
