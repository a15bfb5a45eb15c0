"""The contract between Warden's services: event models, topic names, the common view and ClickHouse DDL."""
