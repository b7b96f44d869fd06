//! The command-line side of the control socket.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use super::protocol::{Request, Response};

/// How long to wait for an answer: the longest failure delay (16 s), plus
/// other attempts queued before this one.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "giftlock is not running: nothing listens on its control socket {path}; start it \
         (`systemctl --user start giftlock`, or `giftlock serve`) and try again"
    )]
    NotRunning { path: PathBuf },
    #[error(
        "cannot connect to {path}: permission denied; run this as the user the giftlock \
         service runs as"
    )]
    PermissionDenied { path: PathBuf },
    #[error("control socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the service sent an answer this version does not understand")]
    BadAnswer,
}

/// Sends one request to the service for `state_dir` and returns its answer.
pub fn request(state_dir: &Path, request: &Request) -> Result<Response, ClientError> {
    request_stream(state_dir, request, &mut |_| false)
}

/// Sends one request and reads answers while `more` says one is not the
/// last (a sweep's progress lines); returns the last.
pub fn request_stream(
    state_dir: &Path,
    request: &Request,
    more: &mut dyn FnMut(&Response) -> bool,
) -> Result<Response, ClientError> {
    let path = super::socket_path(state_dir);
    let io_err = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    let stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning { path: path.clone() }
        }
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path: path.clone() },
        _ => io_err(e),
    })?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(io_err)?;
    let mut line = Zeroizing::new(serde_json::to_vec(request).map_err(|_| ClientError::BadAnswer)?);
    line.push(b'\n');
    (&stream).write_all(&line).map_err(io_err)?;
    let mut reader = BufReader::new(&stream);
    loop {
        let mut answer = Zeroizing::new(Vec::new());
        reader.read_until(b'\n', &mut answer).map_err(io_err)?;
        if answer.is_empty() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the service closed the connection without answering",
            )));
        }
        let response: Response =
            serde_json::from_slice(&answer).map_err(|_| ClientError::BadAnswer)?;
        if !more(&response) {
            return Ok(response);
        }
    }
}
