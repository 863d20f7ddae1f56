//! The quota store suite's calls of several operations (the group commit,
//! `quota_batch` in Redis): operations of one tag run in the order given,
//! each answered as it would be alone — a settlement frees room for the
//! reservations after it, a reservation is refused once those before it
//! filled a window, a settlement or a charge sent twice in one call counts
//! once — and settlements sent together answer each on its own.

use super::super::store::{
    Actual, Answer, Item, Op, QuotaStore, ReserveAnswer, ReserveOp, SettleAnswer, SettleMode,
    SettleOp, Settled, Span,
};
use super::{item, member, usage_of, used};
use std::sync::Arc;

const MIN: u64 = 60_000;

fn reserve(id: &str, items: Vec<Item>) -> Op {
    Op::Reserve(Arc::new(ReserveOp {
        id: id.into(),
        lease_ms: 10_000,
        tomb_ms: 60_000,
        items,
    }))
}

fn settle(id: &str, member: &str, mode: SettleMode, actual: &[(&str, u64)]) -> Arc<SettleOp> {
    Arc::new(SettleOp {
        id: id.into(),
        member: member.into(),
        tomb_ms: 60_000,
        mode,
        actual: actual
            .iter()
            .map(|(key, amount)| Actual {
                key: key.to_string(),
                span: Span::Sliding(MIN),
                amount: *amount,
                limit: 1 << 53,
                alerts: Vec::new().into(),
            })
            .collect(),
        ledger: None,
    })
}

fn settled(a: &Answer) -> SettleAnswer {
    match a {
        Answer::Settle(Settled { answer, .. }) => *answer,
        Answer::Reserve(r) => panic!("a reserve answer for a settlement: {r:?}"),
    }
}

fn reserved(a: &Answer) -> &ReserveAnswer {
    match a {
        Answer::Reserve(r) => r,
        Answer::Settle(s) => panic!("a settle answer for a reservation: {s:?}"),
    }
}

pub async fn run(s: &QuotaStore, salt: &str) {
    let tag = format!("t:batch{salt}");
    let tpm = format!("{{{tag}}}:q:t:batch:tpm:a");
    let rpm = format!("{{{tag}}}:q:t:batch:rpm:a");
    let both = |tokens: u64| vec![item(&tpm, 100, MIN, tokens), item(&rpm, 3, MIN, 1)];

    let r1 = s
        .reserve(&tag, "r1", 10_000, 60_000, &both(60))
        .await
        .unwrap();
    assert_eq!(used(&r1), [60, 1]);
    let r1_settled = [(tpm.as_str(), 20), (rpm.as_str(), 1)];
    let ops = vec![
        // 60 -> 20: room for a's 50
        Op::Settle(settle("r1", member(&r1), SettleMode::Reserved, &r1_settled)),
        reserve("a", both(50)),
        // 70 + 40 > 100
        reserve("b", both(40)),
        // settled once already, in this call
        Op::Settle(settle("r1", member(&r1), SettleMode::Reserved, &r1_settled)),
        Op::Settle(settle("u1", "", SettleMode::Unreserved, &[(&tpm, 10)])),
        Op::Settle(settle("u1", "", SettleMode::Unreserved, &[(&tpm, 10)])),
        reserve("c", both(10)),
        // the request quota's 3 are r1's, a's and c's
        reserve("d", both(5)),
    ];
    let b = s.batch(&tag, &ops).await.unwrap();
    let a: Vec<Answer> = b.answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(a.len(), ops.len());
    assert_eq!(settled(&a[0]), SettleAnswer::Settled);
    assert_eq!(used(reserved(&a[1])), [70, 2]);
    match reserved(&a[2]) {
        ReserveAnswer::Refused {
            index: 0,
            used: 70,
            now_ms,
            ..
        } => assert_eq!(*now_ms, b.now_ms, "one call, one now"),
        other => panic!("b fits no more: {other:?}"),
    }
    assert_eq!(settled(&a[3]), SettleAnswer::Nothing);
    assert_eq!(settled(&a[4]), SettleAnswer::Charged);
    assert_eq!(settled(&a[5]), SettleAnswer::Already);
    assert_eq!(used(reserved(&a[6])), [90, 3]);
    assert!(
        matches!(
            reserved(&a[7]),
            ReserveAnswer::Refused {
                index: 1,
                used: 3,
                ..
            }
        ),
        "{:?}",
        a[7]
    );
    assert_eq!(usage_of(s, &tag, &tpm).await, 90);

    // settlements sent together (as a settle queue worker sends them) are
    // answered each on its own
    let (ma, mc) = (member(reserved(&a[1])), member(reserved(&a[6])));
    let answers = s
        .settle_ops(
            &tag,
            vec![
                settle("a", ma, SettleMode::Reserved, &[(&tpm, 5), (&rpm, 1)]),
                settle("zz", "", SettleMode::Reserved, &[(&tpm, 5)]),
                settle("c", mc, SettleMode::Reserved, &[(&tpm, 0), (&rpm, 1)]),
            ],
        )
        .await
        .unwrap();
    let answers: Vec<SettleAnswer> = answers.into_iter().map(|a| a.unwrap().answer).collect();
    assert_eq!(
        answers,
        [
            SettleAnswer::Settled,
            SettleAnswer::Nothing,
            SettleAnswer::Settled
        ]
    );
    // r1's 20, u1's 10, a's 5
    assert_eq!(usage_of(s, &tag, &tpm).await, 35);
    assert_eq!(usage_of(s, &tag, &rpm).await, 3);
}
