//! Teams (SPEC section 11): the people who spend one account's credits. R24's members and their
//! roles, R26's spend cap per member (judged beside R21's key cap, in `runs`), R27's roles on the
//! billing page. Pure: the store locks the account, reads its members, calls these, and writes
//! what they decided.
//!
//! A member is not a login: identity stays with the canvas, which names the member it acts for
//! (`X-Member-Id`); a member is the account's record of who spent what, and what they may spend.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::Plan;
use crate::credits::Credits;
use crate::ids::AccountId;

/// R24: what a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything; an account always has one.
    Owner,
    /// Everything, as an owner.
    Admin,
    /// Pays: balance, usage, plans, packs, invoices, auto top-up, alerts.
    Billing,
    /// Spends: their own usage, cap and API keys.
    Member,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Billing, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Billing => "billing",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// R27: the API keys a page acting with this role, as `member`, sees and makes.
    pub fn keys(self, member: Option<Uuid>) -> KeyScope {
        match member {
            _ if self.may(PageAccess::Keys) => KeyScope::Account,
            Some(member) if self.may(PageAccess::OwnKeys) => KeyScope::Own(member),
            _ => KeyScope::None,
        }
    }

    /// R27: whether this role may see or do `what` on the billing page.
    pub fn may(self, what: PageAccess) -> bool {
        use PageAccess::*;
        match self {
            Role::Owner | Role::Admin => true,
            Role::Billing => matches!(what, Balance | Usage | Payments | Alerts | AutoTopup),
            Role::Member => matches!(what, Balance | OwnUsage | OwnKeys),
        }
    }
}

/// R27: whose API keys a page sees, makes and revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// Every key of the account; the keys it makes are the account's (owners, admins).
    Account,
    /// The member's own keys, and the keys it makes are theirs.
    Own(Uuid),
    /// No key (billing).
    None,
}

impl KeyScope {
    /// Whether a key belonging to `key_member` is within the scope.
    pub fn shows(self, key_member: Option<Uuid>) -> bool {
        match self {
            KeyScope::Account => true,
            KeyScope::Own(member) => key_member == Some(member),
            KeyScope::None => false,
        }
    }

    /// The member a key made in this scope belongs to (`None`: the account's); `None` outside:
    /// this scope makes no key.
    pub fn maker(self) -> Option<Option<Uuid>> {
        match self {
            KeyScope::Account => Some(None),
            KeyScope::Own(member) => Some(Some(member)),
            KeyScope::None => None,
        }
    }
}

/// What the billing page shows or changes, as R27 divides it among the roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAccess {
    /// The balance and its buckets.
    Balance,
    /// The account's usage, its ledger and trials.
    Usage,
    /// The member's own usage and cap.
    OwnUsage,
    /// Plans, packs, invoices, Stripe's portal: what pays for the account.
    Payments,
    /// The low-balance alert.
    Alerts,
    AutoTopup,
    /// Every API key of the account.
    Keys,
    /// The member's own API keys.
    OwnKeys,
    WebhookEndpoints,
    /// Add, change and remove members.
    Members,
}

/// A member as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// R26: credits this member's runs may hold or capture a calendar month (UTC); `null`: no cap.
    pub monthly_credit_limit: Option<Credits>,
    /// R26: what this member's runs started this month hold or captured.
    pub used_this_month: Credits,
    pub created_at: DateTime<Utc>,
}

/// A member as the rules read it (under the account's lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    pub account: AccountId,
    pub email: String,
    pub role: Role,
    pub monthly_credit_limit: Option<Credits>,
    /// `Some`: removed then (kept for history: runs still name them).
    pub removed_at: Option<DateTime<Utc>>,
}

impl Member {
    pub fn is_current(&self) -> bool {
        self.removed_at.is_none()
    }
}

/// Why a change of the team is refused; each is one of SPEC's codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberRefusal {
    /// 422 INVALID_PARAMETERS.
    #[error("{0}")]
    Invalid(String),
    /// 409 CONFLICT: the email is a current member already.
    #[error("{0} is already a member of this account")]
    AlreadyMember(String),
    /// 409 CONFLICT: the account would have no owner.
    #[error("an account keeps at least one owner: add or promote another owner first")]
    LastOwner,
    /// 403 TEAM_SIZE_LIMIT.
    #[error("the {plan} plan has room for {limit} members")]
    TeamSizeLimit { limit: u32, plan: String },
}

/// A member to add, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub monthly_credit_limit: Option<Credits>,
}

/// The most credits a cap may be (as R21's).
const MOST_CREDITS: i64 = 1_000_000_000_000;

/// R26: a member's monthly credit limit as asked: a positive whole number, or none.
pub fn credit_limit(raw: Option<i64>) -> Result<Option<Credits>, MemberRefusal> {
    match raw {
        None => Ok(None),
        Some(n) if (1..=MOST_CREDITS).contains(&n) => Ok(Some(Credits::new(n))),
        Some(n) => Err(MemberRefusal::Invalid(format!(
            "monthly_credit_limit must be a positive whole number of credits, or null; not {n}"
        ))),
    }
}

/// A role as asked.
pub fn role(raw: &str) -> Result<Role, MemberRefusal> {
    Role::parse(raw)
        .ok_or_else(|| MemberRefusal::Invalid(format!("role must be owner, admin, billing or member; not {raw:?}")))
}

impl NewMember {
    pub fn new(email: &str, name: &str, role_name: &str, limit: Option<i64>) -> Result<NewMember, MemberRefusal> {
        let checked = crate::ports::NewAccount::new(email, name).map_err(MemberRefusal::Invalid)?;
        Ok(NewMember {
            email: checked.email,
            name: checked.name,
            role: role(role_name)?,
            monthly_credit_limit: credit_limit(limit)?,
        })
    }
}

/// Two emails name the same person whatever their case.
pub fn same_email(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// R24: `new` may join an account whose current members are `current`, on `plan`.
pub fn decide_add(plan: &Plan, current: &[Member], new: &NewMember) -> Result<(), MemberRefusal> {
    if current.iter().any(|m| same_email(&m.email, &new.email)) {
        return Err(MemberRefusal::AlreadyMember(new.email.clone()));
    }
    if let Some(limit) = plan.max_members
        && current.len() >= limit as usize
    {
        return Err(MemberRefusal::TeamSizeLimit { limit, plan: plan.id.clone() });
    }
    Ok(())
}

/// What `PATCH /v1/members/{id}` asks; a field left out is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberChange {
    pub role: Option<Role>,
    /// `Some(None)` removes the cap.
    pub monthly_credit_limit: Option<Option<Credits>>,
}

/// R24: whether `member` (a current member among `current`) may become `role`, or leave
/// (`role: None`): never the last owner.
pub fn decide_role(current: &[Member], member: &Member, role: Option<Role>) -> Result<(), MemberRefusal> {
    let owners = current.iter().filter(|m| m.role == Role::Owner).count();
    let leaves_owners = member.role == Role::Owner && role != Some(Role::Owner);
    if leaves_owners && owners <= 1 {
        return Err(MemberRefusal::LastOwner);
    }
    Ok(())
}

/// R26: the notices a member's use earns in a month: at 80% and at 100% of the limit, once each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LimitNotice {
    /// 80% of the limit reached: the member is emailed.
    Nearly,
    /// 100% reached: the member is emailed and `member.limit_reached` sent.
    Reached,
}

impl LimitNotice {
    pub fn percent(self) -> i32 {
        match self {
            LimitNotice::Nearly => 80,
            LimitNotice::Reached => 100,
        }
    }
}

/// R26: a member capped at `limit` has `used` this month, and has had the notices up to `noticed`
/// this month: the notices now due, in order. A run that takes the use from under 80% straight
/// to the limit earns both (each once, as SPEC says).
pub fn limit_notices(limit: Credits, used: Credits, noticed: Option<LimitNotice>) -> Vec<LimitNotice> {
    let reached = |percent: i64| used.get().saturating_mul(100) >= limit.get().saturating_mul(percent);
    [LimitNotice::Nearly, LimitNotice::Reached]
        .into_iter()
        .filter(|n| noticed.is_none_or(|had| *n > had) && reached(i64::from(n.percent())))
        .collect()
}

/// Errors of the members use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// No such account, or no such current member of it.
    #[error("no such member")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] MemberRefusal),
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

/// R24's store: each change under the account's lock, judged by this module's rules.
pub trait MemberStore {
    /// `decide_add` under the lock; the member is emailed and `member.added` sent.
    fn add_member(&self, account: AccountId, new: &NewMember, now: DateTime<Utc>) -> Result<MemberView, MemberError>;
    /// The current members, the first owner first.
    fn members(&self, account: AccountId, now: DateTime<Utc>) -> Result<Vec<MemberView>, MemberError>;
    /// `decide_role` under the lock for a change of role.
    fn change_member(
        &self,
        account: AccountId,
        member: Uuid,
        change: &MemberChange,
        now: DateTime<Utc>,
    ) -> Result<MemberView, MemberError>;
    /// `decide_role` under the lock; kept for history, `member.removed` sent.
    fn remove_member(&self, account: AccountId, member: Uuid, now: DateTime<Utc>) -> Result<(), MemberError>;
    /// A current member of the account, if it is one.
    fn current_member(&self, account: AccountId, member: Uuid) -> Result<Option<Member>, crate::error::StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::tests::catalog;

    fn member(email: &str, role: Role) -> Member {
        Member {
            id: Uuid::now_v7(),
            account: AccountId(Uuid::nil()),
            email: email.into(),
            role,
            monthly_credit_limit: None,
            removed_at: None,
        }
    }

    fn new(email: &str) -> NewMember {
        NewMember::new(email, "N", "member", None).unwrap()
    }

    #[test]
    fn each_role_sees_and_does_what_r27_says() {
        use PageAccess::*;
        let all = [Balance, Usage, OwnUsage, Payments, Alerts, AutoTopup, Keys, OwnKeys, WebhookEndpoints, Members];
        for what in all {
            assert!(Role::Owner.may(what) && Role::Admin.may(what), "{what:?}");
        }
        let billing: Vec<_> = all.into_iter().filter(|w| Role::Billing.may(*w)).collect();
        assert_eq!(billing, [Balance, Usage, Payments, Alerts, AutoTopup]);
        let member: Vec<_> = all.into_iter().filter(|w| Role::Member.may(*w)).collect();
        assert_eq!(member, [Balance, OwnUsage, OwnKeys]);
    }

    #[test]
    fn owners_and_admins_keep_the_accounts_keys_a_member_their_own_billing_none() {
        let (me, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        for role in [Role::Owner, Role::Admin] {
            assert_eq!(role.keys(None), KeyScope::Account);
            assert_eq!(role.keys(None).maker(), Some(None));
            assert!(role.keys(None).shows(Some(other)) && role.keys(None).shows(None));
        }
        let mine = Role::Member.keys(Some(me));
        assert_eq!((mine, mine.maker()), (KeyScope::Own(me), Some(Some(me))));
        assert!(mine.shows(Some(me)) && !mine.shows(Some(other)) && !mine.shows(None));
        assert_eq!(Role::Billing.keys(Some(me)), KeyScope::None);
        assert_eq!(Role::Billing.keys(Some(me)).maker(), None);
        assert!(!Role::Billing.keys(Some(me)).shows(None));
    }

    #[test]
    fn a_role_and_a_limit_are_read_as_asked_or_refused() {
        for r in Role::ALL {
            assert_eq!(role(r.as_str()), Ok(r));
        }
        assert!(matches!(role("boss"), Err(MemberRefusal::Invalid(_))));
        assert_eq!(credit_limit(None), Ok(None));
        assert_eq!(credit_limit(Some(1)), Ok(Some(Credits::new(1))));
        assert!(credit_limit(Some(0)).is_err() && credit_limit(Some(-5)).is_err());
        assert!(NewMember::new("not-an-email", "N", "member", None).is_err());
    }

    #[test]
    fn an_email_is_one_current_member_and_a_plan_caps_the_team() {
        let c = catalog();
        let pro = c.plan("pro").unwrap();
        let team = vec![member("a@b.co", Role::Owner), member("x@b.co", Role::Member)];
        assert_eq!(decide_add(pro, &team, &new("A@B.co")), Err(MemberRefusal::AlreadyMember("A@B.co".into())));
        assert_eq!(decide_add(pro, &team, &new("y@b.co")), Ok(()));
        let full = [team.clone(), vec![member("y@b.co", Role::Member)]].concat();
        assert_eq!(
            decide_add(pro, &full, &new("z@b.co")),
            Err(MemberRefusal::TeamSizeLimit { limit: 3, plan: "pro".into() })
        );
        let enterprise = c.plan("enterprise").unwrap();
        assert_eq!(decide_add(enterprise, &full, &new("z@b.co")), Ok(()), "no cap");
    }

    #[test]
    fn the_last_owner_stays_an_owner() {
        let owner = member("a@b.co", Role::Owner);
        let admin = member("b@b.co", Role::Admin);
        let team = vec![owner.clone(), admin.clone()];
        assert_eq!(decide_role(&team, &owner, None), Err(MemberRefusal::LastOwner));
        assert_eq!(decide_role(&team, &owner, Some(Role::Admin)), Err(MemberRefusal::LastOwner));
        assert_eq!(decide_role(&team, &owner, Some(Role::Owner)), Ok(()));
        assert_eq!(decide_role(&team, &admin, None), Ok(()));
        let two = vec![owner.clone(), Member { role: Role::Owner, ..admin }];
        assert_eq!(decide_role(&two, &owner, None), Ok(()));
    }

    #[test]
    fn a_member_hears_once_at_80_and_once_at_100_percent_a_month() {
        let c = Credits::new;
        use LimitNotice::*;
        assert_eq!(limit_notices(c(100), c(79), None), []);
        assert_eq!(limit_notices(c(100), c(80), None), [Nearly]);
        assert_eq!(limit_notices(c(100), c(90), Some(Nearly)), []);
        assert_eq!(limit_notices(c(100), c(100), Some(Nearly)), [Reached]);
        assert_eq!(limit_notices(c(100), c(100), Some(Reached)), []);
        assert_eq!(limit_notices(c(100), c(100), None), [Nearly, Reached]);
        assert_eq!(limit_notices(c(3), c(3), Some(Nearly)), [Reached]);
    }
}
