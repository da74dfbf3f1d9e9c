ui            = true
disable_mlock = true
log_level     = "info"            # trace|debug|info|warn|error
api_addr      = "https://10.0.0.1:8200"
cluster_addr  = "https://10.0.0.1:8201"
default_lease_ttl = "768h"
max_lease_ttl     = "768h"

storage "raft" {
  path    = "/var/lib/vault/raft"
  node_id = "node1"
  retry_join {
    leader_api_addr     = "https://10.0.0.2:8200"
    leader_ca_cert_file = "/etc/vault/ca.pem"
  }
}

listener "tcp" {
  address            = "0.0.0.0:8200"
  cluster_address    = "0.0.0.0:8201"
  tls_disable        = false
  tls_cert_file      = "/etc/vault/tls.crt"
  tls_key_file       = "/etc/vault/tls.key"
  tls_client_ca_file = "/etc/vault/client-ca.pem"
  tls_min_version    = "tls12"
  telemetry { unauthenticated_metrics_access = false }
}

telemetry {
  prometheus_retention_time = "30s"
  disable_hostname          = true
}
