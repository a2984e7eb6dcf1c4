//! The local control channel: a unix socket `<data-dir>/control.sock`, mode 0600, on which a
//! running `serve` (the store's holder) runs jobs for `run-job`. Only the same user may use it:
//! the file mode keeps others out, and the peer's uid is checked on every connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::domain::{JobName, JobRun, Trigger};
use crate::runner::Runner;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    /// Run a job now and answer with its record.
    Run { job: String, trigger: Trigger },
    /// Answer with the last run of every job.
    LastRuns,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Response {
    run: Option<JobRun>,
    #[serde(default)]
    last_runs: Vec<Option<JobRun>>,
    error: Option<String>,
}

fn failure(error: impl Into<String>) -> Response {
    Response {
        error: Some(error.into()),
        ..Response::default()
    }
}

/// Binds the control socket. Call only while holding the store (a stale socket is replaced).
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves requests until `stop` resolves.
pub async fn serve(
    listener: UnixListener,
    runner: Runner,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("control channel accept: {e}");
                    continue;
                }
            },
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => {}
            _ => {
                tracing::warn!("control channel: refused a connection from another user");
                continue;
            }
        }
        let runner = runner.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, runner).await {
                tracing::warn!("control channel: {e}");
            }
        });
    }
}

async fn handle(stream: UnixStream, runner: Runner) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(4096)).read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Run { job, trigger }) => match JobName::parse(&job) {
            Some(job) => match runner.run(job, trigger).await {
                Ok(run) => Response {
                    run: Some(run),
                    ..Response::default()
                },
                Err(e) => failure(e.to_string()),
            },
            None => failure(format!("unknown job {job:?}")),
        },
        Ok(Request::LastRuns) => {
            let store = &runner.context().store;
            match store.last_runs(JobName::ALL.map(JobName::as_str)) {
                Ok(last_runs) => Response {
                    last_runs,
                    ..Response::default()
                },
                Err(e) => failure(e.to_string()),
            }
        }
        Err(e) => failure(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody is listening: no `serve` holds this data dir (or it has no control channel).
    #[error("no serve process answers on {0}")]
    NotServing(PathBuf),
    #[error("the serve process on {path} failed to run the job: {detail}")]
    Remote { path: PathBuf, detail: String },
    #[error("lost the serve process on {path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

/// Asks the `serve` holding `data_dir` to run `job`, waiting at most `wait` for the answer.
pub async fn request(
    data_dir: &Path,
    job: JobName,
    wait: Duration,
) -> Result<JobRun, ControlError> {
    let path = socket_path(data_dir);
    let response = exchange(
        &path,
        &Request::Run {
            job: job.as_str().into(),
            trigger: Trigger::Cli,
        },
        wait,
    )
    .await?;
    match (response.run, response.error) {
        (Some(run), _) => Ok(run),
        (None, detail) => Err(ControlError::Remote {
            path,
            detail: detail.unwrap_or_default(),
        }),
    }
}

/// Asks the `serve` holding `data_dir` for the last run of every job (in `JobName::ALL` order).
pub async fn last_runs(data_dir: &Path) -> Result<Vec<Option<JobRun>>, ControlError> {
    let path = socket_path(data_dir);
    let response = exchange(&path, &Request::LastRuns, Duration::from_secs(5)).await?;
    match response.error {
        None => Ok(response.last_runs),
        Some(detail) => Err(ControlError::Remote { path, detail }),
    }
}

async fn exchange(
    path: &Path,
    request: &Request,
    wait: Duration,
) -> Result<Response, ControlError> {
    let path = path.to_path_buf();
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(_) => return Err(ControlError::NotServing(path)),
    };
    let io = |e: std::io::Error| ControlError::Io {
        path: path.clone(),
        detail: e.to_string(),
    };
    let (read, mut write) = stream.into_split();
    let mut req = serde_json::to_vec(request).unwrap_or_default();
    req.push(b'\n');
    write.write_all(&req).await.map_err(io)?;
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    match tokio::time::timeout(wait, reader.read_line(&mut line)).await {
        Ok(Ok(0)) => {
            return Err(ControlError::Io {
                path,
                detail: "connection closed".into(),
            })
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(io(e)),
        Err(_) => {
            return Err(ControlError::Io {
                path,
                detail: format!("no answer within {wait:?}"),
            })
        }
    }
    serde_json::from_str(&line).map_err(|e| ControlError::Io {
        path,
        detail: format!("bad answer: {e}"),
    })
}
