-- #15/#16 durable layer, SQLite flavour (kept column-for-column equal to ../postgres/0001_durable.sql).
-- Times are Unix milliseconds (BIGINT); JSON is stored as TEXT.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    title       TEXT,
    created_at  BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE members (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    user_id         TEXT NOT NULL,
    joined_at       BIGINT NOT NULL,
    read_seq        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id, conversation_id);
CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    seq             BIGINT NOT NULL,
    id              TEXT NOT NULL,
    sender          TEXT NOT NULL,
    system          BIGINT NOT NULL DEFAULT 0,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, id)
);
CREATE TABLE users (
    user_id          TEXT PRIMARY KEY,
    notif_seq        BIGINT NOT NULL DEFAULT 0,
    notif_read_seq   BIGINT NOT NULL DEFAULT 0,
    membership_seq   BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE membership_changes (
    user_id         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    change          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    user_ids    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE user_notifications (
    user_id         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    notification_id TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     BIGINT NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    lease_until  BIGINT,
    lease_token  TEXT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    sent_at      BIGINT
);
CREATE INDEX outbox_due ON outbox (state, available_at, id);
CREATE INDEX outbox_sent ON outbox (state, sent_at);
CREATE TABLE connections (
    connection_id TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    connected_at  BIGINT NOT NULL
);
CREATE INDEX connections_by_user ON connections (user_id);
CREATE TABLE store_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
