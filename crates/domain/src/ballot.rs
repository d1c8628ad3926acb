//! 业主表决 owners' ballots (Civil Code art. 278). This module holds the ballot's record and its
//! procedural rules; the exact tally comes with the ballots issue.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::value::{Day, Timestamp};
use crate::{Collection, Scope, record_impl, str_enum};

str_enum! {
    /// The matters of art. 278; (6)–(8) need a three-quarters majority.
    pub enum MatterKind {
        /// (1) 制定和修改业主大会议事规则
        AssemblyRules = ("assembly_rules", "议事规则", "assembly rules"),
        /// (2) 制定和修改管理规约
        ManagementStatute = ("management_statute", "管理规约", "management statute"),
        /// (3) 选举业主委员会或者更换业主委员会成员
        Committee = ("committee", "选举或更换业主委员会", "elect or replace the owners' committee"),
        /// (4) 选聘和解聘物业服务企业或者其他管理人
        PropertyManager = ("property_manager", "选聘解聘物业", "hire or dismiss the property manager"),
        /// (5) 使用建筑物及其附属设施的维修资金
        UseFund = ("use_fund", "使用维修资金", "use the maintenance fund"),
        /// (6) 筹集建筑物及其附属设施的维修资金
        RaiseFund = ("raise_fund", "筹集维修资金", "raise the maintenance fund"),
        /// (7) 改建、重建建筑物及其附属设施
        Rebuild = ("rebuild", "改建重建", "rebuild or reconstruct"),
        /// (8) 改变共有部分的用途或者利用共有部分从事经营活动
        ChangeUse = ("change_use", "改变共有部分用途或经营", "change the use of common parts"),
        /// (9) 有关共有和共同管理权利的其他重大事项
        OtherMajor = ("other_major", "其他重大事项", "other major matter"),
    }
}

impl MatterKind {
    /// Whether the matter needs three quarters of the participants (matters 6–8).
    pub fn needs_three_quarters(self) -> bool {
        matches!(
            self,
            MatterKind::RaiseFund | MatterKind::Rebuild | MatterKind::ChangeUse
        )
    }
}

str_enum! {
    /// 表决意见
    pub enum Choice {
        /// 同意
        Agree = ("agree", "同意", "agree"),
        /// 反对
        Against = ("against", "反对", "against"),
        /// 弃权
        Abstain = ("abstain", "弃权", "abstain"),
    }
}

str_enum! {
    /// Where a ballot stands.
    pub enum BallotStatus {
        /// 草稿
        Draft = ("draft", "草稿", "draft"),
        /// 已公告
        Announced = ("announced", "已公告", "announced"),
        /// 投票中
        Open = ("open", "投票中", "open"),
        /// 已截止
        Closed = ("closed", "已截止", "closed"),
        /// 已公示
        Published = ("published", "已公示", "published"),
    }
}

/// One matter put to the vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Matter {
    /// Matter id.
    #[key]
    pub id: String,
    /// What is decided.
    pub title: String,
    /// Which art. 278 matter it is.
    pub kind: MatterKind,
}

/// One owner's vote on one matter (a later vote before closing replaces an earlier one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Vote {
    /// Vote id.
    #[key]
    pub id: String,
    /// The exclusive part (household/dwelling id) the vote is for.
    pub part: String,
    /// The owner's key (see `Owner::key`).
    pub owner: String,
    /// The matter.
    pub matter: String,
    /// 同意 / 反对 / 弃权
    pub choice: Choice,
    /// Who entered it: the owner, or a committee member entering a paper ballot.
    pub entered_by: String,
    /// When.
    pub at: Timestamp,
    /// On which device.
    pub device: String,
    /// 委托书 a proxy's written authorisation (photo id), if voted by proxy.
    pub proxy: Option<String>,
    /// Scan of the paper ballot (photo id), if entered from paper.
    pub paper_scan: Option<String>,
}

/// 业主表决 an owners' ballot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Hydrate, Reconcile)]
pub struct Ballot {
    /// Ballot id.
    pub id: String,
    /// Always [`Collection::Ballot`].
    pub collection: Collection,
    /// Community-wide scope.
    pub scope: Scope,
    /// 标题
    pub title: String,
    /// The compound whose owners vote.
    pub compound: String,
    /// Day the matters were announced (at least 15 days before opening).
    pub announced: Day,
    /// First day of voting.
    pub opens: Day,
    /// Last day of voting (5–60 days after opening).
    pub closes: Day,
    /// Whether parking spaces count as exclusive parts (local rules).
    pub parking_counts: bool,
    /// Status.
    pub status: BallotStatus,
    /// The matters.
    pub matters: Vec<Matter>,
    /// The votes.
    pub votes: Vec<Vote>,
}

record_impl!(
    Ballot,
    Collection::Ballot,
    |s| s.title.clone(),
    |v, _today| {
        v.require("title", &s.title);
        v.require("compound", &s.compound);
        if s.matters.is_empty() {
            v.error("matters", "a ballot has at least one matter");
        }
        let notice_days = (s.opens.0 - s.announced.0).num_days();
        if notice_days < 15 {
            v.error(
                "opens",
                format!("must be at least 15 days after the announcement, is {notice_days}"),
            );
        }
        let period = (s.closes.0 - s.opens.0).num_days() + 1;
        if !(5..=60).contains(&period) {
            v.error(
                "closes",
                format!("the voting period must be 5 to 60 days, is {period}"),
            );
        }
        for (i, vote) in s.votes.iter().enumerate() {
            if !s.matters.iter().any(|m| m.id == vote.matter) {
                v.error(
                    &format!("votes[{i}].matter"),
                    format!("names no matter of this ballot ({})", vote.matter),
                );
            }
        }
    }
);
