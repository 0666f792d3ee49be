ALTER TABLE page_sessions DROP COLUMN member_id;
ALTER TABLE page_links DROP COLUMN member_id;
ALTER TABLE api_keys DROP CONSTRAINT api_keys_member;
ALTER TABLE api_keys DROP COLUMN member_id;
DROP INDEX runs_member;
ALTER TABLE runs DROP COLUMN member_id;
DROP TABLE members;
