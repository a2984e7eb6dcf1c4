# ACL policy: read the probe's secrets, the Nomad variables easytier-probe/<region> (items
# node_token, api_key, admin_token, network_secret, notify_urls). Tasks can read only their own
# job's variables by default, and the five easytier-probe jobs share these, so attach this policy to
# each of them (periodic launches use their parent job's identity):
#
#   for job in easytier-probe easytier-probe-peer-fetch easytier-probe-probe-sweep \
#              easytier-probe-status-report easytier-probe-notify; do
#     nomad acl policy apply -namespace default -job "$job" "$job-secrets" secrets.policy.hcl
#   done
#
# Use the namespace the jobs run in. docs/deploy.md has the whole procedure.

namespace "default" {
  variables {
    path "easytier-probe/*" {
      capabilities = ["read"]
    }
  }
}
