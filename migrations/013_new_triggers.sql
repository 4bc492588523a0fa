-- The snapshot triggers of the v1 additions (../shared/docs/api-contract.md):
-- a chat's life, labels and imports. The check is added NOT VALID and then
-- validated, so existing rows are read under a lock that lets writes go on.
ALTER TABLE tm_snapshots DROP CONSTRAINT tm_snapshots_trigger_check;
ALTER TABLE tm_snapshots ADD CONSTRAINT tm_snapshots_trigger_check CHECK (trigger IN (
    'message_sent', 'message_received', 'message_edited', 'message_deleted',
    'file_uploaded', 'file_generated', 'file_deleted', 'chat_renamed',
    'restore_performed', 'manual_snapshot',
    'chat_archived', 'chat_unarchived', 'chat_deleted', 'chat_undeleted',
    'snapshot_labeled', 'chat_imported')) NOT VALID;
ALTER TABLE tm_snapshots VALIDATE CONSTRAINT tm_snapshots_trigger_check;
