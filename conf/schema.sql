-- Tables of the example plugins (docs/data.md, "From a plugin").
-- Load with: mariadb -h127.0.0.1 -P3306 -u<user> -p <db> < conf/schema.sql
-- and declare them in the config's "tables":
--   "account": {"pk": "id", "fk": "name", "autoinc": true},
--   "player":  {"pk": "id", "fk": "account_id", "autoinc": true}
-- The data layer reads the columns from information_schema at start; a
-- declared table missing here makes the server refuse to start.

-- account plugin: one row per registered name. pwhash is libsodium's
-- Argon2id string ("$argon2id$v=19$m=65536,t=2,p=1$...", at most 128 bytes),
-- or "pbkdf2-sha256$<rounds>$<salt hex>$<key hex>" for accounts made by
-- earlier versions until their next login; no password is ever stored.
-- UNIQUE(name): of two registrations racing on one name, MySQL refuses one.
CREATE TABLE IF NOT EXISTS `account` (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(32) NOT NULL,
  pwhash VARCHAR(160) NOT NULL,
  created_ms BIGINT NOT NULL DEFAULT 0,
  UNIQUE KEY uniq_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- account plugin: the player record, created on the account's first login.
-- gold and logins change through atomic adds (data_add); motto (UTF-8 text)
-- and bag (any bytes) through updates. UNIQUE(account_id): one player per
-- account even when two servers handle the first login at once.
CREATE TABLE IF NOT EXISTS `player` (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  account_id BIGINT NOT NULL,
  nickname VARCHAR(64) NOT NULL DEFAULT '',
  gold BIGINT NOT NULL DEFAULT 0,
  logins BIGINT NOT NULL DEFAULT 0,
  motto TEXT NULL,
  bag MEDIUMBLOB NULL,
  UNIQUE KEY uniq_account (account_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
