# PgBouncer as the yardstick proxy, for bench/pgbench.sh and
# bench/proxy_profile.sh: one configuration, so both compare infrasql with
# the same PgBouncer. Sourced, not run.

# start_pgbouncer BIN DIR PGDATA PORT USER PASSWORD LOG
#   Session pooling (one backend per client, as infrasql does), SCRAM to the
#   backend's Unix socket in PGDATA with USER and PASSWORD, listening on
#   127.0.0.1:PORT; its files go in DIR, its output to LOG. Sets BOUNCER_PID
#   and returns once the port accepts connections (or after 10 s).
start_pgbouncer() {
    local bin=$1 dir=$2 pgdata=$3 port=$4 user=$5 password=$6 log=$7 i
    mkdir -p "$dir"
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
infrasql = host=$pgdata port=5432 dbname=infrasql
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 100
logfile = $dir/pgbouncer.log
INI
    printf '"%s" "%s"\n' "$user" "$password" >"$dir/userlist.txt"
    chmod 600 "$dir/userlist.txt"
    if [[ $(id -u) == 0 ]]; then
        # PgBouncer refuses to run as root; -u drops to postgres in-process.
        chown -R postgres "$dir"
        "$bin" -u postgres "$dir/pgbouncer.ini" >"$log" 2>&1 &
    else
        "$bin" "$dir/pgbouncer.ini" >"$log" 2>&1 &
    fi
    BOUNCER_PID=$!
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
}
