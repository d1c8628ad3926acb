//! The live relay session (`linli_proto::relay::Live`) driven in one process against the relay
//! library itself (`linli_relay::Relay`), with real stores on real SQLite files and a virtual
//! clock: no child process, no socket, no sleep. The transport is this file: frames of an
//! upload are handed to the relay as they are sent, its replies gathered into the upload's
//! answer; the follow is the relay's own [`Follow`], asked when the test delivers.
//!
//! Faults are the transport's: an upload cut before its answer, the relay restarted between
//! two frames, a frame sent twice, a follow that ends, a burst while an upload is in flight.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use linli_proto::relay::{Input, Live, LiveConfig, LiveEnd, Output};
use linli_relay::{Config, Follow, Relay};
use linli_store::Store;
use linli_sync::live::{Carried, LiveEvent, StoreSide};
use linli_sync::relay_client::{PULL_BYTES, SyncError, sign};
use linli_testkit::roster::{households_in, rooted_store};
use linli_wire::Role;
use linli_wire::relay::{Body, Reply, Response, frame};

/// What the transport does to the next frames of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The upload's connection is cut once this many frames were handled: no answer comes.
    CutAfter(usize),
    /// The relay process restarts after this many frames: the upload's connection breaks.
    RestartAfter(usize),
    /// The first frame is sent twice.
    ReplayFirst,
}

/// The relay in this process, on a kept directory.
struct Net {
    dir: tempfile::TempDir,
    relay: Option<Relay>,
}

impl Net {
    fn new() -> Net {
        let dir = tempfile::tempdir().unwrap();
        let relay = Some(open_relay(dir.path()));
        Net { dir, relay }
    }

    fn relay(&self) -> &Relay {
        self.relay.as_ref().unwrap()
    }

    /// Stops the relay and starts it again on its directory.
    fn restart(&mut self) {
        self.relay = None;
        self.relay = Some(open_relay(self.dir.path()));
    }
}

fn open_relay(dir: &std::path::Path) -> Relay {
    Relay::open(
        dir,
        Config {
            reserve_bytes: 1 << 20,
            ..Config::default()
        },
    )
    .unwrap()
}

/// One device's live session, its store and its virtual clock.
struct Device {
    store: Store,
    side: StoreSide,
    live: Live,
    follow: Follow,
    t0: Instant,
    now: Instant,
    inputs: VecDeque<Input>,
    /// The open upload: frames handed to the relay, and its replies so far.
    upload: Option<(usize, Vec<u8>, bool)>,
    fault: Option<Fault>,
    /// An answer to feed at the next step (the upload was closed).
    answer: Option<Input>,
    sent: usize,
    received: usize,
    uploads: usize,
    ended: Option<Result<LiveEnd, String>>,
}

const URL: &str = "http://relay.test";

impl Device {
    /// Opens a live session for `store` with `net`'s relay at virtual time `t0`.
    fn connect(store: Store, net: &Net, t0: Instant) -> Device {
        let since = store.peer_cursor(&format!("relay {URL}")).unwrap();
        let request = sign(
            &store,
            Body::Follow {
                since,
                max_bytes: PULL_BYTES,
                wait_ms: 300_000,
            },
        )
        .unwrap();
        let (first, follow) = net.relay().open_follow(&request, None).unwrap();
        let side = StoreSide::new(&store, URL).unwrap();
        let (live, start) = side.start(&store, LiveConfig::default(), t0).unwrap();
        // The relay's first answer to the follow (which admits the session's pushes), then
        // the feed's head.
        let inputs = VecDeque::from([
            Input::Follow(frame(&linli_wire::encode(&Reply::Answer(first)))),
            start,
        ]);
        Device {
            store,
            side,
            live,
            follow,
            t0,
            now: t0,
            inputs,
            upload: None,
            fault: None,
            answer: None,
            sent: 0,
            received: 0,
            uploads: 0,
            ended: None,
        }
    }

    /// Handles what is queued at the current time, carrying out every output.
    fn settle(&mut self, net: &mut Net) {
        while let Some(input) = self.inputs.pop_front() {
            for output in self.live.handle(self.now, input) {
                let (mut sent, mut received) = (0, 0);
                let carried = self.side.carry(&mut self.store, output, &mut |e| match e {
                    LiveEvent::Sent(r) => sent += r.sent,
                    LiveEvent::Received(r) => received += r.created + r.changed,
                });
                self.sent += sent;
                self.received += received;
                match carried {
                    Ok(Carried::Input(i)) => self.inputs.push_back(i),
                    Ok(Carried::Done) => {}
                    Ok(Carried::End(end)) => self.ended = Some(Ok(end)),
                    Err(e) => self.ended = Some(Err(e.to_string())),
                    Ok(Carried::Transport(t)) => self.transport(t, net),
                }
            }
        }
    }

    fn transport(&mut self, output: Output, net: &mut Net) {
        match output {
            Output::OpenUpload => {
                self.uploads += 1;
                self.upload = Some((0, Vec::new(), false));
            }
            Output::Send(bytes) => {
                let Some((handled, replies, refused)) = &mut self.upload else {
                    panic!("a frame without an upload");
                };
                let times = if self.fault == Some(Fault::ReplayFirst) && *handled == 0 {
                    2
                } else {
                    1
                };
                for _ in 0..times {
                    if *refused {
                        break;
                    }
                    match self.fault {
                        Some(Fault::CutAfter(n)) if *handled >= n => return,
                        Some(Fault::RestartAfter(n)) if *handled == n => {
                            net.restart();
                            self.inputs
                                .push_back(Input::UploadBroken("the relay restarted".into()));
                            self.upload = None;
                            return;
                        }
                        _ => {}
                    }
                    // The relay handles each frame as it arrives, in order; the first refusal
                    // ends the stream.
                    let reply = match net.relay().handle_bytes(&bytes[4..], None) {
                        Ok(r) => Reply::Answer(r),
                        Err(e) => {
                            *refused = true;
                            Reply::Refused {
                                status: e.status(),
                                message: e.to_string(),
                            }
                        }
                    };
                    replies.extend(frame(&linli_wire::encode(&reply)));
                    *handled += 1;
                }
            }
            Output::CloseUpload => {
                let Some((handled, replies, _)) = self.upload.take() else {
                    return;
                };
                self.answer = Some(match self.fault {
                    Some(Fault::CutAfter(n)) if handled >= n => {
                        Input::UploadBroken("connection reset".into())
                    }
                    _ => Input::Answer {
                        status: 200,
                        body: replies,
                    },
                });
            }
            other => panic!("not the transport's: {other:?}"),
        }
    }

    /// Moves the virtual clock to `at` (after the start), firing the session's timers on the
    /// way and feeding the upload's answer as soon as it was closed.
    fn run_until(&mut self, at: Duration, net: &mut Net) {
        let until = self.t0 + at;
        for _ in 0..10_000 {
            self.settle(net);
            if let Some(answer) = self.answer.take() {
                self.inputs.push_back(answer);
                continue;
            }
            if self.ended.is_some() {
                return;
            }
            match self.live.next_wake() {
                Some(wake) if wake <= until => {
                    self.now = self.now.max(wake);
                    self.inputs.push_back(Input::Timer);
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("the session did not settle");
    }

    /// Writes households `range` now, announcing the feed's head as a commit does.
    fn write(&mut self, range: std::ops::Range<usize>) {
        let community = self.store.community_id().unwrap().unwrap();
        self.store
            .put(households_in(&community, range), "test")
            .unwrap();
        self.changed();
    }

    /// Edits one household now.
    fn edit(&mut self, i: usize, room: &str) {
        self.store
            .edit(&format!("hh-{i:06}"), "address.room", room)
            .unwrap();
        self.changed();
    }

    fn changed(&mut self) {
        let head = self.store.feed_head().unwrap();
        self.inputs.push_back(Input::Changed { head });
    }

    /// The relay delivers what arrived for this device on its follow.
    fn deliver(&mut self, net: &Net) {
        let response = net.relay().follow_next(&mut self.follow).unwrap();
        if let Response::Pulled { blobs, .. } = &response
            && !blobs.is_empty()
        {
            self.inputs
                .push_back(Input::Follow(frame(&linli_wire::encode(&Reply::Answer(
                    response,
                )))));
        }
    }

    fn stop(&mut self, net: &mut Net) {
        self.inputs.push_back(Input::Stop);
        let at = self.now - self.t0 + Duration::from_secs(1);
        self.run_until(at, net);
    }

    fn into_store(self) -> Store {
        self.store
    }
}

/// A staff store that joined `root`'s community.
fn staff(dir: &std::path::Path, root: &Store) -> Store {
    let invite = root.invite(Role::Staff, &[], None).unwrap();
    let mut store = Store::open(dir, &linli_testkit::key()).unwrap();
    store.join(&invite).unwrap();
    store
}

fn room(store: &Store, i: usize) -> String {
    match store.get(&format!("hh-{i:06}")).unwrap() {
        Some(linli_domain::AnyRecord::Household(h)) => h.address.room,
        other => panic!("hh-{i:06}: {other:?}"),
    }
}

fn count(store: &Store) -> i64 {
    store
        .count("SELECT COUNT(*) FROM docs WHERE collection = 'households'")
        .unwrap()
}

/// Two devices of one community and the relay: A (its root) connected at `t0`, B (committee
/// staff) not connected yet. The directories live as long as the returned value.
fn scene() -> ([tempfile::TempDir; 2], Net, Instant, Device, Store) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let net = Net::new();
    let t0 = Instant::now();
    let a = rooted_store(dirs[0].path());
    let b = staff(dirs[1].path(), &a);
    let a = Device::connect(a, &net, t0);
    (dirs, net, t0, a, b)
}

/// B connects and takes what the relay has: the households it then holds.
fn households_at(b: Store, net: &mut Net, t0: Instant) -> i64 {
    let mut b = Device::connect(b, net, t0);
    b.run_until(ms(100), net);
    count(&b.store)
}

/// A's session ended: A connects again at `at` (from `t0`) and runs for a second.
fn reconnect(a: Device, net: &mut Net, t0: Instant, at: Duration) -> Device {
    let mut a = Device::connect(a.into_store(), net, t0 + at);
    a.run_until(at + ms(1_000), net);
    a
}

/// The documents a first upload of `households` households carries: each is two documents
/// (its sensitive fields apart), and the community's own.
fn docs(households: usize) -> usize {
    2 * households + 1
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_burst_goes_in_one_upload_and_reaches_a_following_device() {
    let (_dirs, mut net, t0, mut a, b) = scene();
    let mut b = Device::connect(b, &net, t0);
    // Ten writes a millisecond apart: one seal, one upload.
    for i in 0..10 {
        a.run_until(ms(i as u64), &mut net);
        a.write(i..i + 1);
    }
    a.run_until(ms(1_000), &mut net);
    // Each household is two documents (its sensitive fields apart), and the community's.
    assert_eq!(a.sent, docs(10), "every document counted as sent once");
    assert!(a.ended.is_none());
    b.deliver(&net);
    b.run_until(ms(1_000), &mut net);
    // The households and their sensitive documents (it had the community's from its
    // invitation).
    assert_eq!(b.received, 2 * 10);
    assert_eq!(a.uploads, 1, "one upload for the burst");
    assert_eq!(count(&b.store), 10);
    // Nothing more waits: the store recorded everything as sent.
    assert_eq!(
        a.store.sent_seq(&format!("relay {URL}")).unwrap(),
        a.store.feed_head().unwrap()
    );
    a.stop(&mut net);
    assert_eq!(a.ended, Some(Ok(LiveEnd::Stopped)));
}

#[test]
fn a_burst_while_an_upload_is_in_flight_is_sent_after_and_nothing_is_lost() {
    let (_dirs, mut net, t0, mut a, b) = scene();
    a.write(0..5);
    a.run_until(ms(10), &mut net);
    assert!(a.live.uploading(), "the first upload is open");
    // More work while it is open: the same upload, without what it already carries.
    a.edit(0, "901");
    a.write(5..8);
    a.run_until(ms(20), &mut net);
    // And while it closes (the answer is fed at once here; the edit comes between).
    a.run_until(ms(5_000), &mut net);
    a.edit(1, "902");
    a.run_until(ms(10_000), &mut net);
    assert!(a.ended.is_none(), "{:?}", a.ended);
    assert!(!a.live.uploading());
    let mut b = Device::connect(b, &net, t0);
    b.run_until(ms(100), &mut net);
    assert_eq!(count(&b.store), 8);
    assert_eq!(room(&b.store, 0), "901");
    assert_eq!(room(&b.store, 1), "902");
}

#[test]
fn a_cut_upload_counts_as_not_sent_and_the_next_session_sends_it_again() {
    let (_dirs, mut net, t0, mut a, b) = scene();
    a.fault = Some(Fault::CutAfter(1));
    a.write(0..3);
    a.run_until(ms(1_000), &mut net);
    // The relay stored the frame, but its answer never came: nothing counts as sent.
    assert!(
        matches!(&a.ended, Some(Err(e)) if e.contains("connection reset")),
        "{:?}",
        a.ended
    );
    assert_eq!(a.sent, 0);
    let peer = format!("relay {URL}");
    assert!(a.store.sent_seq(&peer).unwrap() < a.store.feed_head().unwrap());
    // The next session sends it again (the relay keeps both copies) and it lands.
    let a = reconnect(a, &mut net, t0, ms(2_000));
    assert_eq!(a.sent, docs(3));
    assert_eq!(
        a.store.sent_seq(&peer).unwrap(),
        a.store.feed_head().unwrap()
    );
    assert_eq!(households_at(b, &mut net, t0), 3);
}

#[test]
fn a_relay_restarted_between_frames_loses_nothing() {
    let (_dirs, mut net, t0, mut a, b) = scene();
    a.write(0..2);
    a.run_until(ms(10), &mut net);
    // A second burst while the upload is open, then the relay restarts before its frame.
    a.fault = Some(Fault::RestartAfter(1));
    a.write(2..4);
    a.run_until(ms(1_000), &mut net);
    assert!(
        matches!(&a.ended, Some(Err(e)) if e.contains("restarted")),
        "{:?}",
        a.ended
    );
    let a = reconnect(a, &mut net, t0, ms(2_000));
    assert!(a.ended.is_none(), "{:?}", a.ended);
    assert_eq!(
        a.sent,
        docs(4),
        "everything since the last acknowledgement is sent again"
    );
    assert_eq!(households_at(b, &mut net, t0), 4);
}

#[test]
fn a_replayed_frame_is_refused_and_what_it_carried_is_sent_again() {
    let (_dirs, mut net, t0, mut a, b) = scene();
    a.fault = Some(Fault::ReplayFirst);
    a.write(0..2);
    a.run_until(ms(1_000), &mut net);
    assert!(
        matches!(&a.ended, Some(Err(e)) if e.contains("replay")),
        "{:?}",
        a.ended
    );
    assert_eq!(a.sent, 0);
    let a = reconnect(a, &mut net, t0, ms(2_000));
    assert_eq!(a.sent, docs(2));
    assert_eq!(households_at(b, &mut net, t0), 2);
}

#[test]
fn a_follow_that_ends_ends_the_session_after_the_open_upload_is_acknowledged() {
    let dirs = [tempfile::tempdir().unwrap()];
    let mut net = Net::new();
    let t0 = Instant::now();
    let mut a = Device::connect(rooted_store(dirs[0].path()), &net, t0);
    a.write(0..2);
    a.run_until(ms(10), &mut net);
    assert!(a.live.uploading());
    a.inputs.push_back(Input::FollowEnded);
    a.run_until(ms(100), &mut net);
    assert_eq!(a.ended, Some(Ok(LiveEnd::Over)));
    assert_eq!(a.sent, docs(2), "acknowledged before the end");
    // Idle: the next session has nothing to send and wakes only for the relay's silence.
    let mut a = Device::connect(a.into_store(), &net, t0 + ms(200));
    a.run_until(ms(300), &mut net);
    assert_eq!(a.sent, 0);
    assert_eq!(
        a.live.next_wake(),
        Some(t0 + ms(200) + LiveConfig::default().silence)
    );
}

/// `SyncError` is what the command line shows: the transport's reason is in it.
#[test]
fn a_silent_relay_ends_the_session_as_unreachable() {
    let dirs = [tempfile::tempdir().unwrap()];
    let mut net = Net::new();
    let t0 = Instant::now();
    let mut a = Device::connect(rooted_store(dirs[0].path()), &net, t0);
    a.run_until(ms(60_000), &mut net);
    let ended = a.ended.clone();
    assert!(
        matches!(&ended, Some(Err(e)) if e.starts_with("cannot reach the relay") && e.contains("no word")),
        "{ended:?}"
    );
    let _: Option<SyncError> = None;
}
