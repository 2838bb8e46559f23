-- Comet pipes (seed 003): per-tenant (dev_id) user auth hashes, user data,
-- last-online times, the private-message queue, revoked tokens and pipe history settings.
CREATE TABLE comet_users_auth (
    dev_id  TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    hash    TEXT NOT NULL,
    PRIMARY KEY (dev_id, user_id)
);

CREATE TABLE comet_users_data (
    dev_id  TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (dev_id, user_id)
);

-- Last-online unix time; 0 while online.
CREATE TABLE comet_users_time (
    dev_id  TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    time    BIGINT NOT NULL,
    PRIMARY KEY (dev_id, user_id)
);

-- Private messages waiting for a user with no live connection, in `seq` order.
CREATE TABLE comet_users_messages (
    dev_id     TEXT NOT NULL,
    user_id    BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    event      TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (dev_id, user_id, seq)
);

CREATE TABLE comet_revoked_tokens (
    dev_id     TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    PRIMARY KEY (dev_id, token_hash)
);

-- Pipes whose last `length` (1..99) messages are kept.
CREATE TABLE comet_pipes_settings (
    dev_id TEXT NOT NULL,
    pipe   TEXT NOT NULL,
    length BIGINT NOT NULL,
    PRIMARY KEY (dev_id, pipe)
);
