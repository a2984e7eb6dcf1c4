# easytier-probe on Nomad, part 2 of 2: the job status-report, launched on the schedule of
# jobs/status-report.toml (every = "30s") on every probe node, where it runs
# `run-job status-report` in the data dir that easytier-probe.nomad.hcl's serve holds: run-job
# hands the job to that serve over its control socket (same node, same volume, same uid 10001),
# or runs it itself when no serve is there. docs/deploy.md has the steps; tests/deploy.rs checks
# this file against jobs/status-report.toml and the binary.
#
# Made from periodic.nomad.hcl.in, as the other periodic jobs are: change that, then run
# `DEPLOY_WRITE=1 cargo test --test deploy` to write the four files again.

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

job "easytier-probe-status-report" {
  # sysbatch: each launch runs once on every node that passes the constraint, i.e. next to each
  # probe's serve.
  type        = "sysbatch"
  datacenters = var.datacenters

  periodic {
    # Nomad's cron takes seconds only in its 7-field form (sec min hour dom month dow year); a
    # 6-field expression is read as min hour dom month dow year.
    crons            = ["*/30 * * * * * *"]
    prohibit_overlap = true
    time_zone        = "UTC"
  }

  constraint {
    attribute = "${meta.easytier_probe_region}"
    operator  = "is_set"
  }

  group "job" {
    # A run that fails is not retried: the next launch is the retry. A run that could not start
    # now (the store stayed busy, or the previous run is still going) exits 0 with a line saying
    # so (`--busy-ok`), not 75, so it is not a failed allocation: Nomad knows no other success.
    restart {
      attempts = 0
      mode     = "fail"
    }

    volume "data" {
      type      = "host"
      source    = "easytier-probe"
      read_only = false
    }

    task "run-job" {
      driver = "docker"

      config {
        image           = var.image
        args            = ["run-job", "status-report", "--wait", "10s", "--busy-ok"]
        # tini as PID 1: signals forwarded, a one-shot reaped, no zombie left per launch.
        init = true
        readonly_rootfs = true
        cap_drop        = ["ALL"]
        security_opt    = ["no-new-privileges"]
        ulimit {
          nofile = "65536:65536"
        }
        # The image's HEALTHCHECK is for serve; run-job has no API.
        healthchecks {
          disable = true
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

      # The *_FILE variables, for the items the variable has (api_key and network_secret are
      # optional, and an empty network_secret or notify_urls counts as none; run-job serves no API, so no
      # admin_token).
      template {
        destination = "secrets/credentials.env"
        env         = true
        data        = <<-EOT
          {{- with nomadVar (print "easytier-probe/" (env "meta.easytier_probe_region")) }}
          NODE_TOKEN_FILE={{ env "NOMAD_SECRETS_DIR" }}/node_token
          {{- if .Keys | contains "api_key" }}
          API_KEY_FILE={{ env "NOMAD_SECRETS_DIR" }}/api_key
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

      # run-job hands the job to serve over the control socket: 19 MB peak RSS measured
      # (/usr/bin/time -v, each job, 50 peers). Where no serve holds the store it runs the job
      # itself (a 1000-peer sweep peaks around 64 MB): memory_max lets it, where the cluster
      # allows memory oversubscription; elsewhere such a run may be OOM-killed, and the next
      # launch, with serve back, is the retry.
      resources {
        cpu        = 50
        memory     = 48
        memory_max = 256
      }
    }
  }
}
