use super::*;
use std::collections::VecDeque;
use std::task::Waker;

/// What the scripted inner body does on each poll.
enum Step {
    Data(&'static [u8]),
    Big(usize),
    NotReady,
    Trailers,
    Fail,
}

/// An inner body that follows a script, then ends.
struct Scripted(VecDeque<Step>);

impl Body for Scripted {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        match self.0.pop_front() {
            Some(Step::Data(data)) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(data))))),
            Some(Step::Big(len)) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![7u8; len]))))),
            Some(Step::NotReady) => Poll::Pending,
            Some(Step::Trailers) => {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Some(Step::Fail) => Poll::Ready(Some(Err("reset"))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one poll of the coalescing body gave.
#[derive(Debug, PartialEq)]
enum Seen {
    Data(Vec<u8>),
    Trailers,
    Error,
    End,
    Pending,
}

fn poll_once(body: &mut Coalescing<Scripted>) -> Seen {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) => Seen::Data(data.to_vec()),
            Err(_) => Seen::Trailers,
        },
        Poll::Ready(Some(Err(_))) => Seen::Error,
        Poll::Ready(None) => Seen::End,
        Poll::Pending => Seen::Pending,
    }
}

fn coalescing(steps: Vec<Step>) -> Coalescing<Scripted> {
    Coalescing::new(Scripted(steps.into()))
}

#[test]
fn ready_chunks_are_joined_and_the_end_follows() {
    let mut body = coalescing(vec![Step::Data(b"ab"), Step::Data(b"cd"), Step::Data(b"e")]);
    assert_eq!(poll_once(&mut body), Seen::Data(b"abcde".to_vec()));
    assert!(body.is_end_stream());
    assert_eq!(poll_once(&mut body), Seen::End);
}

#[test]
fn a_lone_chunk_is_handed_on_after_the_yields_without_a_copy() {
    let mut body = coalescing(vec![
        Step::Data(b"hello"),
        Step::NotReady,
        Step::NotReady,
        Step::NotReady,
    ]);
    // The inner body is not ready after the chunk: the task yields, twice.
    assert_eq!(poll_once(&mut body), Seen::Pending);
    assert!(!body.is_end_stream());
    assert_eq!(poll_once(&mut body), Seen::Pending);
    // Still not ready: the chunk goes out as it came.
    assert_eq!(poll_once(&mut body), Seen::Data(b"hello".to_vec()));
    assert_eq!(poll_once(&mut body), Seen::End);
}

#[test]
fn a_chunk_that_arrives_during_the_yield_is_joined() {
    let mut body = coalescing(vec![
        Step::Data(b"one "),
        Step::NotReady,
        Step::NotReady,
        Step::Data(b"two"),
        Step::NotReady,
        Step::NotReady,
        Step::NotReady,
    ]);
    assert_eq!(poll_once(&mut body), Seen::Pending);
    assert_eq!(poll_once(&mut body), Seen::Pending);
    assert_eq!(poll_once(&mut body), Seen::Pending);
    assert_eq!(poll_once(&mut body), Seen::Pending);
    assert_eq!(poll_once(&mut body), Seen::Data(b"one two".to_vec()));
}

#[test]
fn nothing_held_means_plain_pending() {
    let mut body = coalescing(vec![Step::NotReady, Step::Data(b"x")]);
    assert_eq!(poll_once(&mut body), Seen::Pending);
    assert_eq!(poll_once(&mut body), Seen::Data(b"x".to_vec()));
}

#[test]
fn chunks_stop_at_the_target_size() {
    let mut body = coalescing(vec![
        Step::Big(40 * 1024),
        Step::Big(40 * 1024),
        Step::Big(10),
    ]);
    match poll_once(&mut body) {
        Seen::Data(data) => assert_eq!(data.len(), 80 * 1024),
        other => panic!("expected data, got {other:?}"),
    }
    assert_eq!(poll_once(&mut body), Seen::Data(vec![7u8; 10]));
    assert_eq!(poll_once(&mut body), Seen::End);
}

#[test]
fn trailers_and_errors_wait_for_the_held_data() {
    let mut body = coalescing(vec![Step::Data(b"msg"), Step::Trailers]);
    assert_eq!(poll_once(&mut body), Seen::Data(b"msg".to_vec()));
    assert!(!body.is_end_stream());
    assert_eq!(poll_once(&mut body), Seen::Trailers);
    assert_eq!(poll_once(&mut body), Seen::End);

    let mut body = coalescing(vec![Step::Data(b"par"), Step::Data(b"tial"), Step::Fail]);
    assert_eq!(poll_once(&mut body), Seen::Data(b"partial".to_vec()));
    assert_eq!(poll_once(&mut body), Seen::Error);
}

#[test]
fn the_size_hint_counts_held_bytes() {
    let mut body = coalescing(vec![Step::Data(b"abc"), Step::NotReady, Step::NotReady]);
    assert_eq!(poll_once(&mut body), Seen::Pending);
    assert_eq!(body.size_hint().lower(), 3);
}
