-- Chat: per-channel sequential ids. `channels.last_chat_id` is the sequence;
-- a writer increments it and inserts in one transaction, so ids are gap-free and
-- unique under concurrent writers (the row lock on PostgreSQL, the write lock on SQLite).
ALTER TABLE channels ADD COLUMN last_chat_id BIGINT NOT NULL DEFAULT 0;

CREATE TABLE chats (
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    id         BIGINT NOT NULL,
    type       TEXT NOT NULL,
    content    TEXT NOT NULL,
    sender_id  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    PRIMARY KEY (channel_id, id)
);

-- How far each user has read each channel.
CREATE TABLE channel_reads (
    channel_id        TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_read_chat_id BIGINT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
