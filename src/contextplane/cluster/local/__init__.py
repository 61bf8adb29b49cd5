"""A local cluster on 127.0.0.1 for trying failover and moves (`contextplane cluster up`,
RFC 0004 slice 6): a private PostgreSQL (postgres.py), SeaweedFS (seaweedfs.py) and N
broker processes (brokers.py), started and stopped in order by supervisor.py."""
