-- The chat list and a chat's life (ListChats, ArchiveChat, DeleteChat …):
-- flags on the chat and who wrote last, kept by every snapshot's write.
ALTER TABLE tm_chats
    ADD COLUMN archived     boolean NOT NULL DEFAULT false,
    ADD COLUMN deleted      boolean NOT NULL DEFAULT false,
    ADD COLUMN last_user_id uuid;

-- Who wrote last, for the chats written before this migration.
UPDATE tm_chats c SET last_user_id = s.user_id
FROM tm_snapshots s
WHERE s.tenant_id = c.tenant_id AND s.id = c.head_snapshot_id AND s.user_id IS NOT NULL;

-- ListChats pages a tenant's chats newest change first, by this index.
CREATE INDEX tm_chats_recent ON tm_chats (tenant_id, head_time DESC, chat_id DESC);
