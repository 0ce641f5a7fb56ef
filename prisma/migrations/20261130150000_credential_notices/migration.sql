-- Servers keep recently checked credentials (sessions, API keys, machine credentials) in memory so a
-- warm request needs no database round trip to authenticate. Any change that could end or narrow a
-- credential notifies every server at commit, whichever code (or person) made it: the servers
-- LISTEN on this channel and forget the user's or machine's cached credentials.
-- Payload: 'user:<uuid>' or 'machine:<uuid>'.

CREATE FUNCTION spindle_credential_notice() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  row_data record;
BEGIN
  IF TG_OP = 'DELETE' THEN row_data := OLD; ELSE row_data := NEW; END IF;
  IF TG_TABLE_NAME = 'User' THEN
    PERFORM pg_notify('spindle_credentials', 'user:' || row_data."id");
  ELSIF TG_TABLE_NAME = 'Machine' THEN
    PERFORM pg_notify('spindle_credentials', 'machine:' || row_data."id");
  ELSE
    PERFORM pg_notify('spindle_credentials', 'user:' || row_data."userId");
  END IF;
  RETURN NULL;
END;
$$;

-- Sessions: sign-out, revocation, expiry moved.
CREATE TRIGGER "Session_credential_notice" AFTER UPDATE OF "revokedAt", "expiresAt", "userId" OR DELETE ON "Session"
  FOR EACH ROW EXECUTE FUNCTION spindle_credential_notice();
-- API keys: revocation, expiry, scopes, workspace binding.
CREATE TRIGGER "ApiKey_credential_notice" AFTER UPDATE OF "revokedAt", "expiresAt", "scopes", "workspaceId", "userId" OR DELETE ON "ApiKey"
  FOR EACH ROW EXECUTE FUNCTION spindle_credential_notice();
-- Users: the system role is part of every credential's scopes.
CREATE TRIGGER "User_credential_notice" AFTER UPDATE OF "role" OR DELETE ON "User"
  FOR EACH ROW EXECUTE FUNCTION spindle_credential_notice();
-- Machines: rotation, recovery, approval, decommission.
CREATE TRIGGER "Machine_credential_notice" AFTER UPDATE OF "credentialHash", "approval", "decommissionedAt", "workspaceId" OR DELETE ON "Machine"
  FOR EACH ROW EXECUTE FUNCTION spindle_credential_notice();
