DROP INDEX accounts_email_lower;
