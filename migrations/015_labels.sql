-- Named versions (LabelSnapshot, UnlabelSnapshot). Every change of a label
-- is a row, written with the SNAPSHOT_LABELED snapshot that made it; a
-- label's target is its latest change (NULL: it was taken off). Rows are
-- only ever added, so a label's whole history stays.
CREATE TABLE tm_label_changes (
    tenant_id    uuid   NOT NULL,
    chat_id      uuid   NOT NULL,
    label        text   NOT NULL,
    chat_version bigint NOT NULL,  -- the version of the SNAPSHOT_LABELED snapshot
    snapshot_id  uuid,             -- the snapshot it names from then on; NULL: none
    PRIMARY KEY (tenant_id, chat_id, label, chat_version),
    FOREIGN KEY (tenant_id, chat_id) REFERENCES tm_chats (tenant_id, chat_id),
    FOREIGN KEY (tenant_id, snapshot_id) REFERENCES tm_snapshots (tenant_id, id)
);
SELECT tm_isolate('tm_label_changes');
GRANT SELECT, INSERT ON tm_label_changes TO tm_app;
