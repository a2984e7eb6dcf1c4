# Nomad client configuration for a probe node (merge into the agent's configuration). A node with
# this host volume and this meta runs one probe: the system job easytier-probe (serve) and the
# periodic jobs easytier-probe-<job> (run-job), all in the same directory. One such node per
# region or datacenter gives one probe per region.
#
# The directory belongs to the image's user (uid and gid 10001) and to nobody else:
#   install -d -m 0700 -o 10001 -g 10001 /srv/easytier-probe

client {
  host_volume "easytier-probe" {
    path      = "/srv/easytier-probe"
    read_only = false
  }

  meta {
    # The region this probe reports (REGION) and the name of its secrets variable
    # (easytier-probe/<region>).
    easytier_probe_region = "us-west"
  }
}
