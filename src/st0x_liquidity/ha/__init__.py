"""Active/passive failover on PostgreSQL: one leader, standbys waiting on its lease."""
