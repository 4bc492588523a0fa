-- A write notifies watchers only of a chat someone watches. A commit that
-- issued NOTIFY takes a cluster-wide lock and queues its payload for every
-- listener: measured at 12-21 % of PostgreSQL's CPU per SaveMessage, paid
-- by every write of every chat though few chats are watched at any time.
-- A replica that follows a chat leases it here and renews the lease while
-- it follows (service/events.py); a write notifies while the lease lasts.
-- A lapsed lease (a replica gone) costs nothing; one left behind by a
-- stopped replica costs notifications no one hears until it lapses.
ALTER TABLE tm_chats ADD COLUMN watched_until timestamptz;
