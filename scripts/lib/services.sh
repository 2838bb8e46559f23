# Helpers for scripts/test: make the services the tests need reachable.
# Each helper starts an installed-but-stopped service, installs a missing one
# with apt-get, and exits non-zero with a clear message when it cannot.

pg_ready() {
    # Connects with the URL the tests will use.
    psql "$HUDDLE_TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1
}

ensure_postgres() {
    if pg_ready; then
        drop_stale_test_schemas
        return 0
    fi
    echo "==> PostgreSQL is not reachable at $HUDDLE_TEST_DATABASE_URL; starting it"
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "==> installing PostgreSQL with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql postgresql-client >/dev/null
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        echo "FATAL: no PostgreSQL cluster found under /etc/postgresql" >&2
        exit 1
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        if psql -U postgres -h 127.0.0.1 -Atqc 'select 1' postgres >/dev/null 2>&1 \
            || su postgres -c "psql -Atqc 'select 1'" >/dev/null 2>&1; then
            break
        fi
        sleep 1
    done
    # A fresh cluster: trust local TCP connections and create the test database.
    local hba
    hba=$(su postgres -c "psql -Atqc 'show hba_file'" 2>/dev/null || true)
    if [ -n "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        su postgres -c "psql -Atqc 'select pg_reload_conf()'" >/dev/null
    fi
    su postgres -c "psql -Atqc \"select 1 from pg_database where datname = 'test'\"" | grep -q 1 \
        || su postgres -c "createdb test" || true
    if ! pg_ready; then
        echo "FATAL: PostgreSQL still unreachable at $HUDDLE_TEST_DATABASE_URL" >&2
        exit 1
    fi
    drop_stale_test_schemas
}

# Schemas left by test runs that were killed mid-test.
drop_stale_test_schemas() {
    psql "$HUDDLE_TEST_DATABASE_URL" -Atqc \
        "select 'drop schema ' || nspname || ' cascade;' from pg_namespace where nspname like 'huddle_t_%'" \
        | psql "$HUDDLE_TEST_DATABASE_URL" -q >/dev/null 2>&1 || true
}

# Node.js >= 20 for the socket.io-client end-to-end suite.
ensure_node() {
    if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then
        return 0
    fi
    echo "==> installing Node.js with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
    if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
        echo "FATAL: Node.js >= 20 is required for tests/e2e (found: $(node --version 2>/dev/null || echo none))" >&2
        exit 1
    fi
}

# A Python 3 with venv for schemathesis (installed into a venv, never system-wide).
ensure_python_venv() {
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return 0
    fi
    echo "==> installing python3-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-venv >/dev/null
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 \
        || { echo "FATAL: python3 with venv is required for scripts/schemathesis" >&2; exit 1; }
}

# cargo-fuzz (libFuzzer) for scripts/fuzz, built once into ~/.cargo/bin.
ensure_cargo_fuzz() {
    if cargo fuzz --version >/dev/null 2>&1; then
        return 0
    fi
    echo "==> cargo install --locked cargo-fuzz"
    cargo install --locked cargo-fuzz
}
