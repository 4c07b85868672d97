"""S3 artifact syncs: directories on hosts kept in step with S3 prefixes, run on the hosts themselves."""
