//! One type for every connection giftlock holds: plain TCP or TLS, client
//! side or server side, so the session and relay code is written once.

use tokio::io::{AsyncRead, AsyncWrite};

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

pub type BoxedStream = Box<dyn Stream>;
