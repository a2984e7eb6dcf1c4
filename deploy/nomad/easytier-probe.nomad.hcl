# easytier-probe on Nomad, part 1 of 2: the HTTP API and the control channel
# (`serve --no-schedule`), one per probe node. The periodic jobs easytier-probe-<job>.nomad.hcl
# run the jobs on the same nodes, in the same data dir (the host volume "easytier-probe").
#
# A probe node is a Nomad client with the host volume and the node meta `easytier_probe_region`
# (client.hcl): this system job runs on every such node, so one probe per region or datacenter
# is one such client in each. The region the probe reports is that meta value.
#
# Secrets never appear here: they are items of the Nomad variable easytier-probe/<region>, which
# the templates below write as files into the task's secrets dir. docs/deploy.md has the steps;
# tests/deploy.rs checks this file against jobs/ and the binary.

# No default: each deploy names the release it runs (`-var image=...:0.2.0`), so a rerun never
# pulls whatever `:latest` has become.
variable "image" {
  type        = string
  description = "The image built from the project's Dockerfile, with a version tag (or a digest), e.g. registry.example.com/easytier-probe:0.2.0"

  validation {
    condition     = can(regex(":[A-Za-z0-9_][A-Za-z0-9_.-]*$", var.image)) && !can(regex(":latest$", var.image))
    error_message = "The image needs a version tag or a digest, not :latest or none."
  }
}

variable "backend_base_url" {
  type        = string
  description = "BACKEND_BASE_URL: the backend's base URL, e.g. https://backend.example.com"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

job "easytier-probe" {
  type        = "system"
  datacenters = var.datacenters

  constraint {
    attribute = "${meta.easytier_probe_region}"
    operator  = "is_set"
  }

  # One probe node at a time: a new image that never turns healthy stops the rollout at the
  # first node. (Nomad before 1.7 enforces only max_parallel and stagger for system jobs.)
  update {
    max_parallel     = 1
    stagger          = "30s"
    health_check     = "checks"
    min_healthy_time = "30s"
    healthy_deadline = "5m"
  }

  group "probe" {
    volume "data" {
      type      = "host"
      source    = "easytier-probe"
      read_only = false
    }

    network {
      port "http" {
        to = 8080
      }
    }

    service {
      name     = "easytier-probe"
      provider = "nomad"
      port     = "http"

      check {
        name     = "health"
        type     = "http"
        path     = "/health"
        interval = "15s"
        timeout  = "3s"

        # /health is 503 when the store cannot write or no sweep came for 3 sweep intervals:
        # 3 failed checks in a row (45 s) restart the task; 60 s of grace for the first sweep.
        check_restart {
          limit = 3
          grace = "60s"
        }
      }
    }

    task "serve" {
      driver = "docker"
      # On SIGTERM running jobs get 10 s, then Offline is sent (at most 5 s) and the store flushed.
      kill_timeout = "30s"

      config {
        image           = var.image
        args            = ["serve", "--no-schedule"]
        ports           = ["http"]
        readonly_rootfs = true
        cap_drop        = ["ALL"]
        security_opt    = ["no-new-privileges"]
        ulimit {
          nofile = "65536:65536"
        }
      }

      volume_mount {
        volume      = "data"
        destination = "/var/lib/easytier-probe"
      }

      env {
        DISTRIBUTED_MODE_ENABLED = "true"
        BACKEND_BASE_URL         = var.backend_base_url
        REGION                   = "${meta.easytier_probe_region}"
        DATA_DIR                 = "/var/lib/easytier-probe"
        LISTEN_ADDR              = "0.0.0.0:8080"
        LOG_FORMAT               = "json"
      }

      # Each secret is a file readable only by the image's user (uid 10001), passed by path.
      template {
        destination = "secrets/node_token"
        perms       = "0400"
        uid         = 10001
        gid         = 10001
        data        = <<-EOT
          {{- with nomadVar (print "easytier-probe/" (env "meta.easytier_probe_region")) -}}
          {{ .node_token }}
          {{- end -}}
        EOT
      }

      template {
        destination = "secrets/api_key"
        perms       = "0400"
        uid         = 10001
        gid         = 10001
        data        = <<-EOT
          {{- with nomadVar (print "easytier-probe/" (env "meta.easytier_probe_region")) -}}
          {{ .api_key }}
          {{- end -}}
        EOT
      }

      template {
        destination = "secrets/admin_token"
        perms       = "0400"
        uid         = 10001
        gid         = 10001
        data        = <<-EOT
          {{- with nomadVar (print "easytier-probe/" (env "meta.easytier_probe_region")) -}}
          {{ .admin_token }}
          {{- end -}}
        EOT
      }

      template {
        destination = "secrets/network_secret"
        perms       = "0400"
        uid         = 10001
        gid         = 10001
        data        = <<-EOT
          {{- with nomadVar (print "easytier-probe/" (env "meta.easytier_probe_region")) -}}
          {{ .network_secret }}
          {{- end -}}
        EOT
      }

      template {
        destination = "secrets/notify_urls"
        perms       = "0400"
        uid         = 10001
        gid         = 10001
        data        = <<-EOT
          {{- with nomadVar (print "easytier-probe/" (env "meta.easytier_probe_region")) -}}
          {{ .notify_urls }}
          {{- end -}}
        EOT
      }

      # The *_FILE variables, for the items the variable has (api_key, admin_token and
      # network_secret are optional; an empty network_secret counts as none, as does an empty
      # notify_urls).
      template {
        destination = "secrets/credentials.env"
        env         = true
        data        = <<-EOT
          {{- with nomadVar (print "easytier-probe/" (env "meta.easytier_probe_region")) }}
          NODE_TOKEN_FILE={{ env "NOMAD_SECRETS_DIR" }}/node_token
          {{- if .Keys | contains "api_key" }}
          API_KEY_FILE={{ env "NOMAD_SECRETS_DIR" }}/api_key
          {{- end }}
          {{- if .Keys | contains "admin_token" }}
          ADMIN_TOKEN_FILE={{ env "NOMAD_SECRETS_DIR" }}/admin_token
          {{- end }}
          {{- if .Keys | contains "network_secret" }}{{ if .network_secret }}
          NETWORK_SECRET_FILE={{ env "NOMAD_SECRETS_DIR" }}/network_secret
          {{- end }}{{ end }}
          {{- if .Keys | contains "notify_urls" }}{{ if .notify_urls }}
          NOTIFY_URLS_FILE={{ env "NOMAD_SECRETS_DIR" }}/notify_urls
          {{- end }}{{ end }}
          {{- end }}
        EOT
      }

      # A 1000-peer sweep peaks around 64 MB (the systemd units allow 256 MB before throttling).
      resources {
        cpu        = 200
        memory     = 256
        memory_max = 512
      }
    }
  }
}
