DROP TABLE business_verifications;
