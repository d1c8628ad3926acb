//! The app's operations against real SQLite files and, for sync, a real `linli-relay` process
//! on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use linli_testkit::namespaces;
use linli_testkit::relay;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use linli_api::{
    Api, Backoff, HouseholdQuery, NewHousehold, NewRequest, NewVisit, RequestQuery, SyncEvent,
    SyncHandle, SyncPhase,
};
use linli_domain::request::Satisfaction;
use linli_domain::work::{VisitMethod, VisitOutcome};
use linli_domain::{Address, Gender, IdType, RequestState, Residence, Tenure};
use relay::Relay;

fn staff(dir: &std::path::Path) -> Api {
    let api = Api::open(dir, linli_testkit::key()).unwrap();
    api.create_community("幸福社区", "和平街道", "王芳")
        .unwrap();
    api
}

fn new_household(room: &str) -> NewHousehold {
    NewHousehold {
        address: Address {
            compound: "幸福里小区".into(),
            building: "3".into(),
            unit: "2".into(),
            room: room.into(),
        },
        grid: Some("G01".into()),
        tenure: Tenure::OwnerOccupied,
        area_m2: 68.5,
        head_name: "张秀英".into(),
        gender: Gender::Female,
        birth: "1949-12-31".into(),
        residence: Residence::Registered,
        id_type: IdType::ResidentId,
        // A valid resident ID number (check digit included).
        id_number: "11010519491231002X".into(),
        phone: "13812345678".into(),
        tags: vec!["独居老人".into()],
    }
}

/// A grandson moving in, with the ID number given.
fn grandson(id_number: &str) -> linli_api::NewMember {
    linli_api::NewMember {
        name: "王小明".into(),
        gender: Gender::Male,
        birth: "2015-06-01".into(),
        relation: linli_domain::Relation::Grandchild,
        residence: Residence::Registered,
        id_type: IdType::ResidentId,
        id_number: id_number.into(),
        phone: String::new(),
    }
}

#[test]
fn a_new_device_creates_a_community_and_keeps_its_roster() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::open(dir.path(), linli_testkit::key()).unwrap();
    assert!(api.status().unwrap().community.is_none());
    assert_eq!(api.overview().unwrap_err().code(), "no_community");
    let status = api
        .create_community("幸福社区", "和平街道", "王芳")
        .unwrap();
    assert_eq!(status.community.unwrap().name, "幸福社区");
    let role = status.role.unwrap();
    assert_eq!(
        (role.code, role.may_reveal, role.may_manage),
        (linli_api::RoleCode::Staff, true, true)
    );

    let mut bad = new_household("501");
    bad.id_number = "110105194912310021".into();
    let err = api.add_household(&bad).unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert!(err.to_string().contains("id_number"), "{err}");
    assert!(
        api.households(&HouseholdQuery::default())
            .unwrap()
            .is_empty()
    );

    let id = api.add_household(&new_household("501")).unwrap();
    let again = api.add_household(&new_household("501")).unwrap_err();
    assert!(
        again.to_string().contains("already has a household"),
        "{again}"
    );

    let rows = api.households(&HouseholdQuery::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].head.as_str(), rows[0].members), ("张秀英", 1));
    assert_eq!(rows[0].tags, vec!["独居老人".to_string()]);
    assert!(!rows[0].unsynced, "no relay set: nothing waits");

    for query in ["张秀英", "zxy", "5678", "002X", "幸福里 3-2-501"] {
        let hits = api.search(query, 10).unwrap();
        assert_eq!(hits.len(), 1, "search {query}");
        assert_eq!(hits[0].household, id);
    }

    let page = api.household(&id).unwrap();
    let m = &page.members[0];
    assert_eq!(m.id_number, "1101**********002X");
    assert_eq!(m.phone, "138****5678");
    let person = m.person.id.clone();
    assert_eq!(
        api.reveal(&person, "phone", "入户核实").unwrap(),
        "13812345678"
    );
    let log = api.audit_log(10).unwrap();
    // Newest first: the reveal, with its reason; before it the household's page was viewed
    // (its members' tags and health) and searched (without the text searched for).
    assert_eq!(
        (
            log[0].action.as_str(),
            log[0].target.as_str(),
            log[0].reason.as_str()
        ),
        ("reveal", person.as_str(), "入户核实")
    );
    assert!(log.iter().any(|e| e.action == "view" && e.target == id));
    assert!(
        log.iter()
            .any(|e| e.action == "search" && e.target.is_empty() && e.detail.is_empty())
    );
    assert_eq!(
        log.len(),
        3,
        "one search logged for five, one view: {log:?}"
    );
    assert_eq!(api.audit_verify().unwrap().broken_at, None);
    assert_eq!(
        (log[0].detail.as_str(), log[0].user.as_str()),
        ("phone", "王芳")
    );
    assert!(!format!("{log:?}").contains("13812345678"));

    let err = api.edit(&person, "phone", "12345").unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert!(err.to_string().contains("phone"), "{err}");
    assert!(api.edit(&person, "phone", "13900001111").unwrap());
    assert!(!api.edit(&person, "phone", "13900001111").unwrap());

    let err = api
        .add_member(&id, &grandson("110105201506010010"))
        .unwrap_err();
    assert!(err.to_string().contains("members[1].id_number"), "{err}");
    let kid = api
        .add_member(&id, &grandson("110105201506010016"))
        .unwrap();
    assert_eq!(
        api.households(&HouseholdQuery::default()).unwrap()[0].members,
        2
    );
    assert_eq!(api.search("wxm", 5).unwrap()[0].id, kid);
    let page = api.household(&id).unwrap();
    let kid_view = page.members.iter().find(|m| m.person.id == kid).unwrap();
    assert_eq!(
        kid_view.person.ethnicity, "",
        "not assumed: recorded when known"
    );
    assert_eq!(kid_view.person.moved_in, Some(linli_domain::today()));
    assert!(api.edit(&kid, "workplace", "幸福里小学").unwrap());
    assert!(api.move_out(&kid, None).unwrap());

    assert!(api.move_out(&person, None).unwrap());
    let rows = api.households(&HouseholdQuery::default()).unwrap();
    assert_eq!(rows[0].members, 0);
    assert!(
        api.household(&id).unwrap().members[0]
            .person
            .moved_out
            .is_some()
    );
    assert_eq!(api.overview().unwrap().people, 0);
}

#[test]
fn a_person_moves_to_another_household_and_keeps_their_page() {
    let dir = tempfile::tempdir().unwrap();
    let api = staff(dir.path());
    let from = api.add_household(&new_household("501")).unwrap();
    let mut other = new_household("502");
    other.head_name = "李建国".into();
    other.gender = Gender::Male;
    other.birth = "1960-01-01".into();
    other.id_number = "110105196001010033".into();
    let to = api.add_household(&other).unwrap();
    let kid = api
        .add_member(&from, &grandson("110105201506010016"))
        .unwrap();
    api.edit(&kid, "phone", "13900001111").unwrap();
    assert_eq!(
        api.reveal(&kid, "phone", "入户核实").unwrap(),
        "13900001111"
    );

    let page = api.person(&kid).unwrap();
    assert_eq!(page.household, from);
    assert_eq!(page.member.phone, "139****1111");
    assert_eq!(page.places.len(), 1);
    assert_eq!(page.reveals.len(), 1);
    assert_eq!(page.reveals[0].detail, "phone");

    api.move_person(&kid, &to, linli_domain::Relation::Other)
        .unwrap();
    let page = api.person(&kid).unwrap();
    assert_eq!(page.household, to, "lives in the new household");
    assert_eq!(page.places.len(), 2);
    assert_eq!(page.places[0].household, to);
    assert_eq!(page.places[0].relation, linli_domain::Relation::Other);
    assert!(page.places[0].moved_out.is_none());
    assert!(
        page.places[1].moved_out.is_some(),
        "moved out of the old one"
    );
    // ID and phone went along; the old household keeps him as history.
    assert_eq!(
        api.reveal(&kid, "id_number", "入户核实").unwrap(),
        "110105201506010016"
    );
    let old = api.household(&from).unwrap();
    assert!(
        old.members
            .iter()
            .any(|m| m.person.id == kid && m.person.moved_out.is_some())
    );
    let rows = api.households(&HouseholdQuery::default()).unwrap();
    let members = |id: &str| rows.iter().find(|r| r.id == id).unwrap().members;
    assert_eq!((members(&from), members(&to)), (1, 2));
    assert_eq!(api.search("wxm", 5).unwrap()[0].household, to);

    // Not to where he already lives; not someone who has left.
    let err = api
        .move_person(&kid, &to, linli_domain::Relation::Other)
        .unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert!(
        api.move_person(&kid, "hh-none", linli_domain::Relation::Other)
            .is_err()
    );
    // The head may not leave while others live there; once another member is the head, she may.
    let head = api.household(&to).unwrap().household.head.clone().unwrap();
    let err = api.move_out(&head, None).unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert!(err.to_string().contains("李建国"), "{err}");
    assert_eq!(
        api.move_person(&head, &from, linli_domain::Relation::Other)
            .unwrap_err()
            .code(),
        "invalid"
    );
    assert!(api.set_head(&to, "p-nobody").is_err());
    api.set_head(&to, &kid).unwrap();
    let page = api.household(&to).unwrap();
    assert_eq!(page.household.head.as_deref(), Some(kid.as_str()));
    let relation = |id: &str| {
        page.members
            .iter()
            .find(|m| m.person.id == id)
            .unwrap()
            .person
            .relation
    };
    assert_eq!(
        (relation(&kid), relation(&head)),
        (linli_domain::Relation::Head, linli_domain::Relation::Other)
    );
    api.set_head(&to, &head).unwrap();

    // Moving back takes up his old entry.
    api.move_person(&kid, &from, linli_domain::Relation::Grandchild)
        .unwrap();
    let back = api.household(&from).unwrap();
    assert_eq!(
        back.members.iter().filter(|m| m.person.id == kid).count(),
        1
    );
    assert_eq!(api.person(&kid).unwrap().household, from);
}

#[test]
fn demo_roster_visits_and_overview() {
    let dir = tempfile::tempdir().unwrap();
    // Time is the test's: each visit below is a moment after the one before.
    let clock = Arc::new(linli_api::clock::ManualClock::new(
        linli_domain::Timestamp::now(),
    ));
    let api = Api::with_clock(dir.path(), linli_testkit::key(), clock.clone()).unwrap();
    api.start_demo(60, "王芳").unwrap();
    assert!(
        api.start_demo(60, "王芳").is_err(),
        "a demo fills a new device only"
    );

    let tree = api.compounds().unwrap();
    assert_eq!(tree.iter().map(|c| c.households).sum::<i64>(), 60);
    let c = &tree[0];
    let b = &c.buildings[0];
    let rows = api
        .households(&HouseholdQuery {
            compound: Some(c.name.clone()),
            building: Some(b.name.clone()),
            ..HouseholdQuery::default()
        })
        .unwrap();
    assert_eq!(rows.len() as i64, b.households);
    assert!(!b.units.is_empty());

    let target = rows[0].id.clone();
    let grid = rows[0].grid.clone().unwrap();
    // Households of the grid visited this month, as the overview counts them.
    let visited_in_grid = || {
        api.overview()
            .unwrap()
            .visits
            .iter()
            .find(|g| g.grid == grid)
            .unwrap()
            .visited
    };
    let visited_before = visited_in_grid();

    let mut visit = NewVisit {
        household: target.clone(),
        method: VisitMethod::InPerson,
        outcome: VisitOutcome::NotHome,
        retry_on: None,
        changes: vec![],
        follow_up: String::new(),
        notes: String::new(),
    };
    let err = api.record_visit(&visit).unwrap_err();
    assert!(err.to_string().contains("retry_on"), "{err}");
    visit.retry_on = Some(linli_domain::today().to_string());
    api.record_visit(&visit).unwrap();
    clock.advance(Duration::from_secs(60)); // a later instant: newest first
    visit.outcome = VisitOutcome::Done;
    visit.notes = "老人身体不错".into();
    let done_visit = api.record_visit(&visit).unwrap();

    // A third visit finds a member moved out: the roster follows, in the same write. (Not
    // the head while others stay: another member is made head first.)
    let page = api.household(&target).unwrap();
    let present =
        |m: &&linli_api::MemberView| m.person.moved_out.is_none() && m.person.deceased.is_none();
    let head = page.household.head.clone().unwrap();
    assert!(
        page.members.iter().filter(present).count() >= 2,
        "a household of several"
    );
    let mut head_leaves = visit.clone();
    head_leaves.changes = vec![linli_domain::work::PersonChange {
        person: head.clone(),
        change: linli_domain::work::PersonChangeKind::Deceased,
        note: String::new(),
    }];
    let err = api.record_visit(&head_leaves).unwrap_err();
    assert!(err.to_string().contains("head of this household"), "{err}");
    let leaving = page
        .members
        .iter()
        .filter(present)
        .find(|m| m.person.id != head)
        .unwrap()
        .person
        .id
        .clone();
    let present_before = page
        .members
        .iter()
        .filter(|m| m.person.moved_out.is_none() && m.person.deceased.is_none())
        .count();
    clock.advance(Duration::from_secs(60));
    let mut moved = visit.clone();
    moved.changes = vec![linli_domain::work::PersonChange {
        person: leaving.clone(),
        change: linli_domain::work::PersonChangeKind::MovedOut,
        note: "搬去子女家".into(),
    }];
    moved.changes.push(linli_domain::work::PersonChange {
        person: "p-nobody".into(),
        change: linli_domain::work::PersonChangeKind::Deceased,
        note: String::new(),
    });
    let err = api.record_visit(&moved).unwrap_err();
    assert_eq!(err.code(), "not_found", "{err}");
    moved.changes.pop();
    let vid = api.record_visit(&moved).unwrap();

    let page = api.household(&target).unwrap();
    assert_eq!(page.visits.len(), 3);
    assert_eq!(
        (page.visits[0].id.as_str(), page.visits[1].id.as_str()),
        (vid.as_str(), done_visit.as_str()),
        "newest first"
    );
    // The page shows what each visit recorded.
    let done = &page.visits[1];
    assert_eq!(
        (done.outcome.code(), done.method.code(), done.notes.as_str()),
        ("done", "in_person", "老人身体不错")
    );
    assert_eq!(done.worker, "王芳");
    let not_home = &page.visits[2];
    assert_eq!(not_home.outcome.code(), "not_home");
    assert_eq!(not_home.retry_on, Some(linli_domain::today()));
    let gone = page
        .members
        .iter()
        .find(|m| m.person.id == leaving)
        .unwrap();
    assert_eq!(gone.person.moved_out, Some(linli_domain::today()));
    assert_eq!(
        page.members
            .iter()
            .filter(|m| m.person.moved_out.is_none() && m.person.deceased.is_none())
            .count(),
        present_before - 1
    );
    assert_eq!(page.visits[0].id, vid);
    assert_eq!(page.household.last_visit, Some(linli_domain::today()));
    assert_eq!(visited_in_grid(), visited_before + 1);
    let after = api.overview().unwrap();
    let not_visited = api
        .households(&HouseholdQuery {
            not_visited_since: Some(linli_domain::today().to_string()),
            ..HouseholdQuery::default()
        })
        .unwrap();
    assert_eq!(not_visited.len(), 59);
    assert!(not_visited.iter().all(|h| h.id != target));
    assert!(after.households == 60 && after.people > 60);
    assert!(!after.tags.is_empty());
}

#[test]
fn a_request_goes_around_its_loop() {
    let dir = tempfile::tempdir().unwrap();
    let api = staff(dir.path());
    let hh = api.add_household(&new_household("101")).unwrap();
    let err = api
        .report_request(&NewRequest {
            title: "楼道灯坏了".into(),
            description: String::new(),
            category: "nonsense".into(),
            household: Some(hh.clone()),
            reporter_name: String::new(),
            grid: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("category"), "{err}");
    let id = api
        .report_request(&NewRequest {
            title: "楼道灯坏了".into(),
            description: "三楼楼道灯不亮".into(),
            category: "utilities".into(),
            household: Some(hh.clone()),
            reporter_name: "张秀英".into(),
            grid: None,
        })
        .unwrap();
    let view = api.request(&id).unwrap();
    assert_eq!(view.request.grid.as_deref(), Some("G01"));
    assert_eq!(
        view.next,
        vec![RequestState::Accepted, RequestState::Rejected]
    );
    assert_eq!(view.category_name, "水电气暖");
    assert!(!view.overdue);

    let err = api
        .advance_request(&id, RequestState::Closed, "")
        .unwrap_err();
    assert_eq!(err.code(), "step");
    let err = api
        .advance_request(&id, RequestState::Rejected, " ")
        .unwrap_err();
    assert!(err.to_string().contains("reason"), "{err}");

    for to in [
        RequestState::Accepted,
        RequestState::Dispatched,
        RequestState::InProgress,
        RequestState::Done,
    ] {
        api.advance_request(&id, to, "").unwrap();
    }
    api.advance_request(&id, RequestState::Returned, "灯还是不亮")
        .unwrap();
    for to in [
        RequestState::Dispatched,
        RequestState::InProgress,
        RequestState::Done,
        RequestState::Verified,
        RequestState::Closed,
    ] {
        api.advance_request(&id, to, "").unwrap();
    }
    let view = api.rate_request(&id, Satisfaction::Satisfied).unwrap();
    assert_eq!(view.request.steps.len(), 11);
    assert_eq!(view.request.satisfaction, Some(Satisfaction::Satisfied));
    assert!(
        api.remind_request(&id, "").is_err(),
        "a closed request takes no reminder"
    );

    let rows = api.requests(&RequestQuery::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state.code(), "closed");
    assert!(
        api.requests(&RequestQuery {
            open: true,
            ..RequestQuery::default()
        })
        .unwrap()
        .is_empty()
    );
    assert_eq!(api.overview().unwrap().open_requests, 0);
}

/// Background sync in test time: periods of `period`, retries after 100–400 ms.
fn quick(period: Duration) -> Backoff {
    Backoff {
        period,
        base: Duration::from_millis(100),
        max: Duration::from_millis(400),
        ..Backoff::default()
    }
}

/// Starts a device's background loop; its events come on the receiver.
fn spawn_loop(api: &Arc<Api>, backoff: Backoff) -> (SyncHandle, mpsc::Receiver<SyncEvent>) {
    let (tx, rx) = mpsc::channel();
    let handle = SyncHandle::spawn(api.clone(), backoff, move |e| {
        let _ = tx.send(e);
    });
    (handle, rx)
}

fn wait_for(rx: &mpsc::Receiver<SyncEvent>, what: &str, ok: impl Fn(&SyncEvent) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(e) = rx.recv_timeout(Duration::from_millis(200))
            && ok(&e)
        {
            return;
        }
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn devices_sync_through_a_relay_and_settle_a_conflict() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path(), 0);
    let (a_dir, c_dir, o_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = staff(a_dir.path());
    assert_eq!(a.sync_status().unwrap().phase, SyncPhase::NoRelay);
    a.set_relay(&relay.url).unwrap();
    let hh = a.add_household(&new_household("501")).unwrap();
    let status = a.sync_status().unwrap();
    assert!(
        status.pending >= 3,
        "community, household, its sensitive part: {status:?}"
    );
    assert!(a.households(&HouseholdQuery::default()).unwrap()[0].unsynced);
    let rq = a
        .report_request(&NewRequest {
            title: "漏水".into(),
            description: String::new(),
            category: "property".into(),
            household: Some(hh.clone()),
            reporter_name: String::new(),
            grid: None,
        })
        .unwrap();
    for to in [RequestState::Accepted, RequestState::Dispatched] {
        a.advance_request(&rq, to, "").unwrap();
    }
    let s = a.sync_once();
    assert_eq!(s.phase, SyncPhase::Synced, "{s:?}");
    assert_eq!(s.pending, 0);
    assert!(!a.households(&HouseholdQuery::default()).unwrap()[0].unsynced);

    // An owners' committee member sees community-wide records only and no sensitive values.
    let owners = Api::open(o_dir.path(), linli_testkit::key()).unwrap();
    owners
        .join(&a.invite("owners", &[]).unwrap(), "赵六")
        .unwrap();
    assert_eq!(owners.sync_once().phase, SyncPhase::Synced);
    let st = owners.status().unwrap();
    assert_eq!(st.role.as_ref().unwrap().code, linli_api::RoleCode::Owners);
    assert_eq!(st.households, 0);
    assert!(owners.invite("staff", &[]).is_err());

    // A grid worker of G01 receives the household and the request.
    let c = Api::open(c_dir.path(), linli_testkit::key()).unwrap();
    assert!(a.invite("grid", &[]).is_err(), "a grid worker needs grids");
    c.join(&a.invite("grid", &["G01".into()]).unwrap(), "李四")
        .unwrap();
    assert_eq!(c.sync_once().phase, SyncPhase::Synced);
    assert_eq!(c.households(&HouseholdQuery::default()).unwrap().len(), 1);
    let person = c.household(&hh).unwrap().members[0].person.id.clone();
    assert_eq!(
        c.reveal(&person, "id_number", "入户核实").unwrap(),
        "11010519491231002X"
    );

    // Offline, both move the request differently.
    a.advance_request(&rq, RequestState::InProgress, "")
        .unwrap();
    c.advance_request(&rq, RequestState::Returned, "不属于本网格")
        .unwrap();
    assert_eq!(a.sync_once().phase, SyncPhase::Synced);
    assert_eq!(c.sync_once().phase, SyncPhase::Synced);
    assert_eq!(a.sync_once().phase, SyncPhase::Synced);
    let view = a.request(&rq).unwrap();
    let linli_api::LoopView::Conflict { branches } = &view.status else {
        panic!("expected a conflict: {:?}", view.status)
    };
    assert_eq!(branches.len(), 2);
    assert!(view.next.is_empty());
    assert_eq!(
        a.requests(&RequestQuery::default()).unwrap()[0]
            .state
            .code(),
        "conflict"
    );
    let err = a.advance_request(&rq, RequestState::Done, "").unwrap_err();
    assert_eq!(err.code(), "conflict");
    let keep = branches
        .iter()
        .find(|b| b.to == RequestState::InProgress)
        .unwrap()
        .id
        .clone();
    let view = a.settle_request(&rq, &keep, "已上门处理").unwrap();
    assert!(matches!(
        view.status,
        linli_api::LoopView::Settled {
            state: RequestState::InProgress,
            ..
        }
    ));
    assert!(
        view.request
            .steps
            .iter()
            .any(|s| s.to == RequestState::Returned),
        "both steps stay in the history"
    );
    drop(relay);
}

#[test]
fn background_sync_backs_off_while_offline_and_catches_up() {
    let relay_dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(relay_dir.path(), 0);
    let port = relay.port();
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(staff(dir.path()));
    api.set_relay(&relay.url).unwrap();
    let (handle, rx) = spawn_loop(&api, quick(Duration::from_millis(300)));
    let synced = |e: &SyncEvent| matches!(e, SyncEvent::Status(s) if s.phase == SyncPhase::Synced && s.pending == 0);
    wait_for(&rx, "a first sync", synced);

    relay.kill();
    api.add_household(&new_household("502")).unwrap();
    handle.sync_now();
    wait_for(
        &rx,
        "two failed attempts",
        |e| matches!(e, SyncEvent::Status(s) if s.phase == SyncPhase::Offline && s.failures >= 2 && s.pending >= 2),
    );
    assert!(api.sync_status().unwrap().last_error.is_some());

    let _relay = Relay::start(relay_dir.path(), port);
    wait_for(&rx, "catching up after the relay is back", synced);
    assert_eq!(api.sync_status().unwrap().failures, 0);
    drop(handle);
}

#[test]
fn a_staff_device_compacts_the_relay_when_it_is_due() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path(), 0);
    let rows = |table: &str| -> i64 {
        let db = rusqlite::Connection::open(relay_dir.path().join("relay.sqlite")).unwrap();
        db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(staff(dir.path()));
    api.set_relay(&relay.url).unwrap();
    let hh = api.add_household(&new_household("801")).unwrap();
    // Many small syncs: a change blob each.
    for i in 0..5 {
        api.edit(&hh, "notes", &format!("第{i}次")).unwrap();
        assert_eq!(api.sync_once().phase, SyncPhase::Synced);
    }
    let blobs = rows("blobs");
    assert!(blobs >= 6, "{blobs}");
    let docs = rows("blob_docs");

    let backoff = Backoff {
        compact_every: Duration::ZERO,
        ..quick(Duration::from_millis(300))
    };
    let (handle, rx) = spawn_loop(&api, backoff);
    // The clock starts at the first sync; the next round compacts: a snapshot per scope (G01
    // and community-wide), one row per document (community, household, its sensitive part).
    wait_for(&rx, "a compaction", |_| rows("blob_docs") == 3);
    assert_eq!(rows("blobs"), 2);
    assert!(docs > 3, "{docs}");
    drop(handle);

    // A grid worker's device never compacts (it holds only some scopes and travels on mobile data).
    let g_dir = tempfile::tempdir().unwrap();
    let g = Arc::new(Api::open(g_dir.path(), linli_testkit::key()).unwrap());
    g.join(&api.invite("grid", &["G01".into()]).unwrap(), "李四")
        .unwrap();
    assert_eq!(g.sync_once().phase, SyncPhase::Synced);
    let last = || -> i64 {
        let db = rusqlite::Connection::open(relay_dir.path().join("relay.sqlite")).unwrap();
        db.query_row("SELECT MAX(seq) FROM blobs", [], |r| r.get(0))
            .unwrap()
    };
    let before = last();
    g.compact_relay_if_due(Duration::ZERO);
    g.compact_relay_if_due(Duration::ZERO);
    assert_eq!(last(), before, "nothing uploaded");
    // The staff device, whose clock runs since its first sync, uploads new snapshots.
    api.compact_relay_if_due(Duration::ZERO);
    assert!(last() > before);
    drop(relay);
}

#[test]
fn connected_devices_hear_of_each_others_changes_at_once() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path(), 0);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Arc::new(staff(a_dir.path()));
    a.set_relay(&relay.url).unwrap();
    let b = Arc::new(Api::open(b_dir.path(), linli_testkit::key()).unwrap());
    b.join(&a.invite("staff", &[]).unwrap(), "王五").unwrap();
    // A period of an hour: only the held connection can bring a change within the test.
    let spawn = |api: &Arc<Api>| spawn_loop(api, quick(Duration::from_secs(3600)));
    let live =
        |e: &SyncEvent| matches!(e, SyncEvent::Status(s) if s.phase == SyncPhase::Synced && s.live);
    let (a_handle, a_rx) = spawn(&a);
    wait_for(&a_rx, "A connected", live);
    let (b_handle, b_rx) = spawn(&b);
    wait_for(&b_rx, "B connected", live);
    assert!(b.sync_status().unwrap().live);
    assert!(b.households(&HouseholdQuery::default()).unwrap().is_empty());

    // A adds a household and does nothing else: B hears of it.
    let hh = a.add_household(&new_household("601")).unwrap();
    wait_for(&b_rx, "the household at B", |e| {
        matches!(e, SyncEvent::Changed { .. })
    });
    let rows = b.households(&HouseholdQuery::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, hh);
    assert!(!rows[0].unsynced);

    // And the other way round.
    b.edit(&hh, "notes", "楼道灯已修").unwrap();
    wait_for(&a_rx, "B's edit at A", |e| {
        matches!(e, SyncEvent::Changed { .. })
    });
    assert_eq!(a.household(&hh).unwrap().household.notes, "楼道灯已修");
    // A's own upload counts as sent once the relay has answered it (it stays open a moment
    // after the last change, for more).
    wait_for(
        &a_rx,
        "A's upload answered",
        |e| matches!(e, SyncEvent::Status(s) if s.pending == 0),
    );
    assert_eq!(a.sync_status().unwrap().pending, 0);

    // Statuses are numbered in the order they are read, events and answers alike, so that the
    // app can show the latest whatever order they reach it in: a status read while an edit
    // waited is followed by an event, numbered later, that reports it sent.
    a.edit(&hh, "notes", "楼道灯已修，已回访").unwrap();
    let read = a.sync_status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0;
    loop {
        assert!(Instant::now() < deadline, "no event reported the edit sent");
        let Ok(SyncEvent::Status(s)) = a_rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        assert!(
            s.rev > last,
            "events in the order read: {} after {last}",
            s.rev
        );
        last = s.rev;
        if s.pending == 0 && s.rev > read.rev {
            break;
        }
    }
    assert!(a.sync_status().unwrap().rev > last);

    // Stopping does not wait for a held connection to time out.
    let t = Instant::now();
    drop(a_handle);
    assert!(!a.sync_status().unwrap().live);
    drop(b_handle);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(relay);
}

#[test]
fn an_inspection_task_is_ticked_and_a_failed_item_becomes_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let api = staff(dir.path());
    api.add_household(&new_household("501")).unwrap();
    let templates = api.task_templates();
    let fire = templates
        .iter()
        .find(|t| t.name == "消防通道堵塞排查")
        .unwrap();
    let err = api
        .create_task(&linli_api::NewTask {
            template: fire.name.into(),
            compound: "幸福里小区".into(),
            building: "99".into(),
            due: None,
            assignee: String::new(),
        })
        .unwrap_err();
    assert!(err.to_string().contains("has no households"), "{err}");
    let id = api
        .create_task(&linli_api::NewTask {
            template: fire.name.into(),
            compound: "幸福里小区".into(),
            building: "3".into(),
            due: Some("2020-01-01".into()),
            assignee: "网格员1".into(),
        })
        .unwrap();
    let rows = api.tasks(Some("G01")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].checked, rows[0].items),
        (0, fire.items.len() as u32)
    );
    assert!(rows[0].overdue);

    let items: Vec<String> = api
        .task(&id)
        .unwrap()
        .task
        .checklist
        .iter()
        .map(|i| i.id.clone())
        .collect();
    let err = api.item_to_request(&id, &items[0]).unwrap_err();
    assert!(err.to_string().contains("only a failed"), "{err}");
    api.check_item(&id, &items[0], false, "消防通道堆放自行车")
        .unwrap();
    let rq = api.item_to_request(&id, &items[0]).unwrap();
    assert_eq!(
        api.item_to_request(&id, &items[0]).unwrap(),
        rq,
        "once per item"
    );
    let req = api.request(&rq).unwrap();
    assert!(
        req.request.title.contains("消防通道畅通"),
        "{}",
        req.request.title
    );
    assert_eq!(req.request.description, "消防通道堆放自行车");
    assert_eq!(req.request.grid.as_deref(), Some("G01"));

    for i in &items[1..] {
        api.check_item(&id, i, true, "").unwrap();
    }
    let view = api.task(&id).unwrap();
    assert_eq!(view.task.status, linli_domain::TaskStatus::Done);
    let rows = api.tasks(None).unwrap();
    assert_eq!(
        (rows[0].status.code(), rows[0].checked),
        ("done", fire.items.len() as u32)
    );
    assert!(!rows[0].overdue);
    let overview = api.overview().unwrap();
    assert_eq!(overview.tasks[0].done, 1);
}

#[test]
fn help_posts_and_notices_with_read_confirmations() {
    use linli_domain::board::{PostKind, PostStatus};
    let dir = tempfile::tempdir().unwrap();
    let api = staff(dir.path());
    let hh = api.add_household(&new_household("501")).unwrap();
    let post = api
        .create_post(PostKind::Request, "求助：周三陪老人看病", "上午九点")
        .unwrap();
    let err = api.move_post(&post, PostStatus::Done).unwrap_err();
    assert!(
        err.to_string().contains("cannot go from open to done"),
        "{err}"
    );
    api.reply_post(&post, "我可以").unwrap();
    let p = api.move_post(&post, PostStatus::Claimed).unwrap();
    assert_eq!(p.claimed_by.as_deref(), Some("王芳"));
    // Done is said by who asked or who helped, not by a third person.
    api.set_user("李四");
    let err = api.move_post(&post, PostStatus::Done).unwrap_err();
    assert!(err.to_string().contains("claimed to done"), "{err}");
    api.set_user("王芳");
    let p = api.move_post(&post, PostStatus::Done).unwrap();
    assert_eq!((p.status, p.replies.len()), (PostStatus::Done, 1));
    assert_eq!(
        api.posts().unwrap()[0].status,
        Some(linli_domain::PostStatus::Done)
    );

    assert!(
        api.publish_notice("停水通知", "", true).is_err(),
        "a notice needs a body"
    );
    let n = api
        .publish_notice("停水通知", "周五 9:00–17:00 停水", true)
        .unwrap();
    assert!(api.confirm_read(&n, "hh-nope").is_err());
    let v = api.confirm_read(&n, &hh).unwrap();
    let v2 = api.confirm_read(&n, &hh).unwrap();
    assert_eq!((v.confirmed, v2.confirmed, v.households), (1, 1, 1));
    assert_eq!(v.notice.receipts.keys().next(), Some(&hh));
    assert_eq!(api.notices().unwrap()[0].title, "停水通知");
}

#[test]
fn two_devices_sync_directly_without_the_relay() {
    use std::net::{Ipv4Addr, SocketAddr};
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Arc::new(staff(a_dir.path()));
    let hh = a.add_household(&new_household("501")).unwrap();
    let b = Api::open(b_dir.path(), linli_testkit::key()).unwrap();
    b.join(&a.invite("grid", &["G01".into()]).unwrap(), "李四")
        .unwrap();

    let (tx, rx) = mpsc::channel();
    let server = linli_api::PeerServer::start(
        &a,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        false,
        move |e| {
            let _ = tx.send(e);
        },
    )
    .unwrap();
    assert!(
        b.sync_peer("LINLIP1-not-a-ticket")
            .unwrap_err()
            .to_string()
            .contains("ticket")
    );

    let first = b.sync_peer(server.ticket()).unwrap();
    assert!(first.received >= 3, "{first:?}");
    let person = b.household(&hh).unwrap().members[0].person.id.clone();
    assert!(b.edit(&person, "phone", "13900001111").unwrap());
    let back = b.sync_peer(server.ticket()).unwrap();
    assert_eq!(back.sent, 1, "{back:?}");
    wait_for(
        &rx,
        "the served device to report the change",
        |e| matches!(e, SyncEvent::Changed { received } if *received >= 1),
    );
    assert_eq!(a.household(&hh).unwrap().members[0].phone, "139****1111");
    drop(server);
}

#[test]
fn a_device_syncs_again_with_a_peer_it_knows_whenever_it_answers() {
    use std::net::{Ipv4Addr, SocketAddr};
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Arc::new(staff(a_dir.path()));
    let b = Arc::new(Api::open(b_dir.path(), linli_testkit::key()).unwrap());
    b.join(&a.invite("staff", &[]).unwrap(), "李四").unwrap();
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let serve = |api: &Arc<Api>| {
        let bind = api.serving_bind(loopback).unwrap();
        linli_api::PeerServer::start(api, bind, false, |_| {}).unwrap()
    };

    // Once by ticket: B remembers A.
    let server = serve(&a);
    b.sync_peer(server.ticket()).unwrap();
    let known = b.known_peers().unwrap();
    assert_eq!(known.len(), 1);
    assert!(known[0].last_synced_ms.is_some() && known[0].last_error.is_none());

    // B's background loop (no relay at all) brings A's new household without a ticket.
    let (handle, rx) = spawn_loop(&b, quick(Duration::from_millis(300)));
    let first = a.add_household(&new_household("701")).unwrap();
    wait_for(&rx, "A's household at B", |_| b.household(&first).is_ok());

    // A stops serving: B notes it and carries on. A serves again, on the port it used
    // before, so B's remembered ticket still reaches it.
    let ticket = server.ticket().to_string();
    drop(server);
    let second = a.add_household(&new_household("702")).unwrap();
    wait_for(&rx, "B to note that A is away", |_| {
        b.known_peers().unwrap()[0].last_error.is_some()
    });
    assert!(b.household(&second).is_err());
    let server = serve(&a);
    assert_eq!(server.ticket(), ticket, "the same port, the same ticket");
    wait_for(&rx, "A's second household at B", |_| {
        b.household(&second).is_ok()
    });
    assert!(b.known_peers().unwrap()[0].last_error.is_none());

    assert!(
        b.forget_peer(&b.known_peers().unwrap()[0].key.clone())
            .unwrap()
    );
    assert!(b.known_peers().unwrap().is_empty());
    drop(handle);
    drop(server);
}

/// Two devices that serve on the same network find each other (multicast DNS, here on the
/// loopback of a network namespace of the test's own) and sync without a ticket; a device of
/// another community serving there is not tried.
#[test]
fn devices_serving_nearby_find_each_other_and_sync_without_a_ticket() {
    use std::net::{Ipv4Addr, SocketAddr};
    if !namespaces::isolated("devices_serving_nearby_find_each_other_and_sync_without_a_ticket") {
        return;
    }
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = Arc::new(staff(dirs[0].path()));
    let b = Arc::new(Api::open(dirs[1].path(), linli_testkit::key()).unwrap());
    b.join(&a.invite("staff", &[]).unwrap(), "李四").unwrap();
    let stranger = Arc::new(staff(dirs[2].path()));
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let hh = a.add_household(&new_household("801")).unwrap();
    let _a_serves = linli_api::PeerServer::start(&a, loopback, true, |_| {}).unwrap();
    let _s_serves = linli_api::PeerServer::start(&stranger, loopback, true, |_| {}).unwrap();
    // B's loop runs with no relay and no known peer: only what the network announces.
    let (handle, rx) = spawn_loop(&b, quick(Duration::from_secs(3600)));
    let _b_serves = linli_api::PeerServer::start(&b, loopback, true, |_| {}).unwrap();
    wait_for(&rx, "A's household at B, found nearby", |_| {
        b.household(&hh).is_ok()
    });
    let nearby = b.nearby_peers();
    assert_eq!(
        nearby.len(),
        1,
        "only A, not the other community's device: {nearby:?}"
    );
    let known = b.known_peers().unwrap();
    assert_eq!(known.len(), 1, "{known:?}");
    assert_eq!(known[0].key, nearby[0].key);
    assert!(known[0].last_error.is_none());
    drop(handle);
}

/// A full disk (a small tmpfs that really fills up): a write is refused whole with
/// `storage_full` (the screens say so), nothing of it is stored, earlier work is intact, and
/// the same write succeeds once there is room.
#[test]
fn a_full_disk_refuses_a_write_whole_and_loses_nothing() {
    let Some(disk) =
        namespaces::on_small_disk("a_full_disk_refuses_a_write_whole_and_loses_nothing", 2048)
    else {
        return;
    };
    let dir = disk.join("store");
    let api = staff(&dir);
    let first = api.add_household(&new_household("901")).unwrap();
    let count = |api: &Api| api.households(&HouseholdQuery::default()).unwrap().len();
    // Room that another program holds, given back later.
    let ballast = disk.join("ballast");
    std::fs::write(&ballast, vec![1u8; 512 * 1024]).unwrap();
    let mut added = 0;
    let refused = loop {
        assert!(added < 2000, "the disk never filled");
        match api.add_household(&new_household(&format!("{}", 1000 + added))) {
            Ok(_) => added += 1,
            Err(e) => break e,
        }
    };
    assert!(added > 0, "the disk was full before the test began");
    assert_eq!(refused.code(), "storage_full", "{refused}");
    assert_eq!(
        count(&api),
        1 + added,
        "nothing of the refused write is stored"
    );
    assert!(api.household(&first).is_ok(), "earlier work is intact");
    let again = format!("{}", 1000 + added);
    std::fs::remove_file(&ballast).unwrap();
    let last = api.add_household(&new_household(&again)).unwrap();
    assert!(api.household(&last).is_ok());
    // Reopened from disk: everything is there, once.
    drop(api);
    let api = Api::open(&dir, linli_testkit::key()).unwrap();
    assert_eq!(count(&api), 2 + added);
}

/// The demo's overdue requests are reminded once: not again at the next look, nor after the
/// app restarts; an owners' committee device is not reminded of requests at all.
#[test]
fn overdue_requests_are_reminded_once_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::open(dir.path(), linli_testkit::key()).unwrap();
    api.start_demo(800, "王芳").unwrap();
    let overdue = api
        .requests(&linli_api::RequestQuery {
            overdue: true,
            ..Default::default()
        })
        .unwrap();
    assert!(!overdue.is_empty(), "the demo has overdue requests");
    let first = api.reminders().unwrap();
    let reminded: Vec<&str> = first
        .iter()
        .filter(|r| r.kind == linli_api::ReminderKind::Overdue)
        .map(|r| r.id.as_str())
        .collect();
    let mut expected: Vec<&str> = overdue.iter().map(|r| r.id.as_str()).collect();
    expected.sort_unstable();
    let mut got = reminded.clone();
    got.sort_unstable();
    assert_eq!(got, expected);
    assert!(
        first.windows(2).all(|w| w[0].deadline <= w[1].deadline),
        "most urgent first"
    );
    assert!(api.reminders().unwrap().is_empty(), "once");
    drop(api);
    let api = Api::open(dir.path(), linli_testkit::key()).unwrap();
    assert!(
        api.reminders().unwrap().is_empty(),
        "not again after a restart"
    );

    let owners_dir = tempfile::tempdir().unwrap();
    let owners = Api::open(owners_dir.path(), linli_testkit::key()).unwrap();
    owners
        .join(&api.invite("owners", &[]).unwrap(), "业委会")
        .unwrap();
    assert!(owners.reminders().unwrap().is_empty());
}

/// What was typed and not saved stays on the device that typed it: kept across a restart,
/// never sent, gone once saved or discarded.
#[test]
fn drafts_stay_on_the_device_until_saved() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path(), 0);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = staff(a_dir.path());
    a.set_relay(&relay.url).unwrap();
    let draft = serde_json::json!({"head_name": "钱草稿", "id_number": "11010519491231002X"});
    a.save_draft("household.new", "", &draft).unwrap();
    assert_eq!(a.sync_once().phase, SyncPhase::Synced);
    drop(a);
    let a = Api::open(a_dir.path(), linli_testkit::key()).unwrap();
    assert_eq!(
        a.draft("household.new", "").unwrap(),
        Some(draft.clone()),
        "kept across a restart"
    );

    let b = Api::open(b_dir.path(), linli_testkit::key()).unwrap();
    b.join(&a.invite("staff", &[]).unwrap(), "李四").unwrap();
    assert_eq!(b.sync_once().phase, SyncPhase::Synced);
    assert_eq!(b.draft("household.new", "").unwrap(), None, "never synced");
    drop(relay);
    for file in std::fs::read_dir(relay_dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap_or_default();
        assert!(
            !bytes
                .windows("钱草稿".len())
                .any(|w| w == "钱草稿".as_bytes()),
            "the relay never saw it"
        );
    }

    let e = a.save_draft("household new", "", &draft).unwrap_err();
    assert_eq!(e.code(), "invalid", "{e}");
    a.clear_draft("household.new", "").unwrap();
    assert_eq!(a.draft("household.new", "").unwrap(), None);
}

#[test]
fn a_live_session_counts_a_silent_relay_as_lost() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path(), 0);
    let dir = tempfile::tempdir().unwrap();
    let api = staff(dir.path());
    api.set_relay(&relay.url).unwrap();
    assert_eq!(api.sync_once().phase, SyncPhase::Synced);
    let mut store = linli_store::Store::open(dir.path(), &linli_testkit::key()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The relay says nothing while nothing arrives but an empty frame every 15 s: asked to
    // hear from it every 300 ms, the session gives up after that, with the reason.
    let defaults = linli_sync::live::LiveOptions::default();
    let options = linli_sync::live::LiveOptions {
        config: linli_proto::relay::LiveConfig {
            silence: Duration::from_millis(300),
            ..defaults.config
        },
        ..defaults
    };
    let t = Instant::now();
    let ended = rt.block_on(linli_sync::live::live(
        &mut store,
        &relay.url,
        options,
        std::future::pending(),
        |_| {},
    ));
    let err = ended.expect_err("a silent relay");
    assert!(err.to_string().contains("no word from the relay"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    drop(relay);
}

/// Data nobody can read is set aside: the app's status counts it, Settings lists it with its
/// sender, and only a staff device has the relay drop it.
#[test]
fn data_set_aside_shows_in_the_status_and_staff_have_the_relay_drop_it() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path(), 0);
    let (a_dir, o_dir, g_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = staff(a_dir.path());
    a.set_relay(&relay.url).unwrap();
    a.add_household(&new_household("501")).unwrap();
    assert_eq!(a.sync_once().phase, SyncPhase::Synced);
    let owners = Api::open(o_dir.path(), linli_testkit::key()).unwrap();
    owners
        .join(&a.invite("owners", &[]).unwrap(), "业委会")
        .unwrap();
    assert_eq!(owners.sync_once().phase, SyncPhase::Synced);
    let grid = Api::open(g_dir.path(), linli_testkit::key()).unwrap();
    grid.join(&a.invite("grid", &["G01".into()]).unwrap(), "网格员")
        .unwrap();

    let garbage = linli_wire::relay::NewBlob {
        scope: "*".into(),
        kind: linli_wire::relay::BlobKind::Changes,
        docs: vec!["notice-x".into()],
        covers: 0,
        sealed: vec![0; 64],
    };
    assert_eq!(
        relay::hostile_push(o_dir.path(), &relay.url, vec![garbage]),
        200
    );
    for api in [&a, &grid] {
        let s = api.sync_once();
        assert_eq!(s.phase, SyncPhase::Synced, "{s:?}");
        assert_eq!(s.set_aside, 1, "{s:?}");
        let listed = api.set_aside().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].scope, "*");
        assert_eq!(listed[0].bytes, 64);
    }
    // The grid worker's household arrived all the same.
    assert_eq!(
        grid.households(&HouseholdQuery::default()).unwrap().len(),
        1
    );
    assert_eq!(grid.drop_set_aside().unwrap_err().code(), "forbidden");
    assert_eq!(a.drop_set_aside().unwrap(), 1);
    assert_eq!(a.sync_status().unwrap().set_aside, 0);
    assert!(a.set_aside().unwrap().is_empty());
}

/// Deadlines pass with the API's clock, not the machine's: a request reported now is not
/// overdue; moved past its category's deadline, it is, on its page and in the lists.
#[test]
fn a_request_becomes_overdue_when_the_clock_passes_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(linli_api::clock::ManualClock::new(
        linli_domain::Timestamp::now(),
    ));
    let api = Api::with_clock(dir.path(), linli_testkit::key(), clock.clone()).unwrap();
    api.create_community("幸福社区", "和平街道", "王芳")
        .unwrap();
    let hh = api.add_household(&new_household("101")).unwrap();
    let id = api
        .report_request(&NewRequest {
            title: "楼道灯坏了".into(),
            description: "三楼楼道灯不亮".into(),
            category: "utilities".into(),
            household: Some(hh),
            reporter_name: "张秀英".into(),
            grid: None,
        })
        .unwrap();
    let view = api.request(&id).unwrap();
    assert!(!view.overdue);
    let deadline = view.request.deadline;
    let overdue = |api: &Api| {
        api.requests(&linli_api::RequestQuery {
            overdue: true,
            ..linli_api::RequestQuery::default()
        })
        .unwrap()
        .len()
    };
    assert_eq!(overdue(&api), 0);
    clock.set(linli_domain::Timestamp(deadline + 60_000));
    assert!(api.request(&id).unwrap().overdue);
    assert_eq!(overdue(&api), 1);
}

/// Every operation that not every role may do, on a committee staff, a grid worker (G01) and
/// an owners' committee device of one community synced through a relay: allowed (it may still
/// fail for another reason, e.g. a step the request's state does not allow) or refused with
/// `forbidden` and a message naming what may not be done.
#[test]
fn every_role_is_allowed_or_refused_every_operation_with_a_clear_error() {
    use linli_api::{ApiError, ErrorCode, NewTask};
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let relay = Relay::start(dirs[3].path(), 0);
    let s = staff(dirs[0].path());
    s.set_relay(&relay.url).unwrap();
    let hh = s.add_household(&new_household("501")).unwrap();
    let person = s.household(&hh).unwrap().members[0].person.id.clone();
    let rq = s
        .report_request(&NewRequest {
            title: "楼道灯坏了".into(),
            description: String::new(),
            category: "utilities".into(),
            household: Some(hh.clone()),
            reporter_name: String::new(),
            grid: None,
        })
        .unwrap();
    let notice = s.publish_notice("停水通知", "周五停水", true).unwrap();
    let task = s
        .create_task(&NewTask {
            template: "楼道杂物清理巡查".into(),
            compound: "幸福里小区".into(),
            building: "3".into(),
            due: None,
            assignee: String::new(),
        })
        .unwrap();
    assert_eq!(s.sync_once().phase, SyncPhase::Synced);
    let g = Api::open(dirs[1].path(), linli_testkit::key()).unwrap();
    g.join(&s.invite("grid", &["G01".into()]).unwrap(), "李四")
        .unwrap();
    assert_eq!(g.sync_once().phase, SyncPhase::Synced);
    let o = Api::open(dirs[2].path(), linli_testkit::key()).unwrap();
    o.join(&s.invite("owners", &[]).unwrap(), "赵六").unwrap();
    assert_eq!(o.sync_once().phase, SyncPhase::Synced);

    type Op<'a> = Box<dyn Fn(&Api) -> Result<(), ApiError> + 'a>;
    let ops: Vec<(&str, [bool; 3], Op)> = vec![
        (
            "overview",
            [true, false, false],
            Box::new(|a| a.overview().map(|_| ())),
        ),
        (
            "compounds",
            [true, true, false],
            Box::new(|a| a.compounds().map(|_| ())),
        ),
        (
            "households",
            [true, true, false],
            Box::new(|a| a.households(&HouseholdQuery::default()).map(|_| ())),
        ),
        (
            "household",
            [true, true, false],
            Box::new(|a| a.household(&hh).map(|_| ())),
        ),
        (
            "person",
            [true, true, false],
            Box::new(|a| a.person(&person).map(|_| ())),
        ),
        (
            "search",
            [true, true, false],
            Box::new(|a| a.search("张", 10).map(|_| ())),
        ),
        (
            "reveal",
            [true, true, false],
            Box::new(|a| a.reveal(&person, "phone", "入户核实").map(|_| ())),
        ),
        (
            "edit",
            [true, true, false],
            Box::new(|a| a.edit(&hh, "notes", "门口有台阶").map(|_| ())),
        ),
        (
            "add_household",
            [true, true, false],
            Box::new(|a| a.add_household(&new_household("502")).map(|_| ())),
        ),
        (
            "record_visit",
            [true, true, false],
            Box::new(|a| {
                a.record_visit(&NewVisit {
                    household: hh.clone(),
                    method: VisitMethod::InPerson,
                    outcome: VisitOutcome::Done,
                    retry_on: None,
                    changes: Vec::new(),
                    follow_up: String::new(),
                    notes: String::new(),
                })
                .map(|_| ())
            }),
        ),
        (
            "requests",
            [true, true, true],
            Box::new(|a| a.requests(&RequestQuery::default()).map(|_| ())),
        ),
        (
            "report_request",
            [true, true, true],
            Box::new(|a| {
                a.report_request(&NewRequest {
                    title: "路灯不亮".into(),
                    description: String::new(),
                    category: "utilities".into(),
                    household: None,
                    reporter_name: String::new(),
                    grid: None,
                })
                .map(|_| ())
            }),
        ),
        (
            "accept",
            [true, false, false],
            Box::new(|a| {
                a.advance_request(&rq, RequestState::Accepted, "")
                    .map(|_| ())
            }),
        ),
        (
            "dispatch",
            [true, false, false],
            Box::new(|a| {
                a.advance_request(&rq, RequestState::Dispatched, "")
                    .map(|_| ())
            }),
        ),
        (
            "start handling",
            [true, true, false],
            Box::new(|a| {
                a.advance_request(&rq, RequestState::InProgress, "")
                    .map(|_| ())
            }),
        ),
        (
            "close",
            [true, false, false],
            Box::new(|a| a.advance_request(&rq, RequestState::Closed, "").map(|_| ())),
        ),
        (
            "reopen",
            [true, false, false],
            Box::new(|a| {
                a.advance_request(&rq, RequestState::Reopened, "不满意")
                    .map(|_| ())
            }),
        ),
        (
            "settle",
            [true, true, false],
            Box::new(|a| a.settle_request(&rq, "s-x", "").map(|_| ())),
        ),
        (
            "rate",
            [true, true, false],
            Box::new(|a| a.rate_request(&rq, Satisfaction::Satisfied).map(|_| ())),
        ),
        (
            "remind",
            [true, false, false],
            Box::new(|a| a.remind_request(&rq, "").map(|_| ())),
        ),
        (
            "create_task",
            [true, false, false],
            Box::new(|a| {
                a.create_task(&NewTask {
                    template: "楼道杂物清理巡查".into(),
                    compound: "幸福里小区".into(),
                    building: "3".into(),
                    due: None,
                    assignee: String::new(),
                })
                .map(|_| ())
            }),
        ),
        (
            "check_item",
            [true, true, false],
            Box::new(|a| a.check_item(&task, "i1", false, "堆放纸箱").map(|_| ())),
        ),
        (
            "item_to_request",
            [true, true, false],
            Box::new(|a| a.item_to_request(&task, "i1").map(|_| ())),
        ),
        (
            "create_post",
            [true, true, true],
            Box::new(|a| {
                a.create_post(linli_domain::PostKind::Offer, "可以帮忙取快递", "")
                    .map(|_| ())
            }),
        ),
        (
            "edit a notice",
            [true, false, true],
            Box::new(|a| a.edit(&notice, "title", "停水通知（更正）").map(|_| ())),
        ),
        (
            "publish_notice",
            [true, false, true],
            Box::new(|a| a.publish_notice("通知", "内容", false).map(|_| ())),
        ),
        (
            "confirm_read",
            [true, true, false],
            Box::new(|a| a.confirm_read(&notice, &hh).map(|_| ())),
        ),
        (
            "invite",
            [true, false, false],
            Box::new(|a| a.invite("grid", &["G01".into()]).map(|_| ())),
        ),
        (
            "export_doc",
            [true, false, false],
            Box::new(|a| a.export_doc(&hh).map(|_| ())),
        ),
        (
            "set_lock_minutes",
            [true, false, false],
            Box::new(|a| a.set_lock_minutes(10)),
        ),
        (
            "drop_set_aside",
            [true, false, false],
            Box::new(|a| a.drop_set_aside().map(|_| ())),
        ),
    ];
    let devices = [("staff", &s), ("grid", &g), ("owners", &o)];
    let mut wrong = Vec::new();
    for (name, allowed, op) in &ops {
        for (i, (role, api)) in devices.iter().enumerate() {
            match op(api) {
                // Refused: by the role, or (a record outside what the device holds, e.g. a
                // household on an owners' committee device) not found there.
                Err(e)
                    if e.code() == ErrorCode::Forbidden
                        || (!allowed[i] && e.code() == ErrorCode::NotFound) =>
                {
                    if allowed[i] {
                        wrong.push(format!("{name} refused to {role}: {e}"));
                    } else if e.code() == ErrorCode::Forbidden
                        && !e.to_string().contains("may not")
                        && !e.to_string().contains("only")
                    {
                        wrong.push(format!("{name} refused to {role} without saying what: {e}"));
                    }
                }
                other => {
                    if !allowed[i] {
                        wrong.push(format!(
                            "{name} allowed to {role}: {:?}",
                            other.map_err(|e| e.to_string())
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
