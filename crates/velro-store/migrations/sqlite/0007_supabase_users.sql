-- Supabase's soft delete (GoTrue's `should_soft_delete`): the row stays, scrubbed, with the
-- time it was deleted (unix microseconds). Bans and the metadata objects came with 0002.

ALTER TABLE users ADD COLUMN deleted_at INTEGER;
