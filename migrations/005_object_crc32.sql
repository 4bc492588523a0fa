-- The CRC-32 (ZIP's checksum) of each stored object, recorded at upload.
--
-- A ZIP export writes it into the entry's header, so media bytes stream from
-- S3 to the caller without another pass over them. Objects stored before this
-- column existed have NULL here; exports compute theirs on the way.

ALTER TABLE tm_objects ADD COLUMN crc32 bigint CHECK (crc32 BETWEEN 0 AND 4294967295);
