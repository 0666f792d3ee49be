//! Outbound work and the records it leaves, by status: a mail in the outbox, a payment job (a
//! Stripe call a change decided), an auto top-up, a webhook delivery, a Stripe event received.
//! Each status is typed here and constrained by a CHECK in SQL; the store writes and compares
//! these, never a bare string.

use chrono::TimeDelta;

/// How long a claimed mail is left to its claimer before another may take it: longer than an
/// SMTP exchange may last (lettre's timeouts).
pub const MAIL_LEASE: TimeDelta = TimeDelta::minutes(3);
/// How long a claimed payment job is left to its claimer: longer than a Stripe call may last (20 s,
/// retried by the client).
pub const PAYMENT_JOB_LEASE: TimeDelta = TimeDelta::minutes(2);

/// A status: its SQL spelling, and back.
macro_rules! status {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

status!(
    /// A mail in the outbox.
    MailStatus {
        /// Due at its next attempt.
        Pending => "pending",
        Sent => "sent",
        /// Given up after `MAX_MAIL_ATTEMPTS` (an admin may send it again).
        Dead => "dead",
    }
);

status!(
    /// A payment job: a Stripe call a change decided (R18: cancel a duplicate subscription and
    /// refund it).
    PaymentJobStatus {
        Pending => "pending",
        Done => "done",
        Dead => "dead",
    }
);

status!(
    /// An auto top-up (R22).
    AutoTopupStatus {
        /// Written by the capture; the worker has not had Stripe's answer yet.
        Pending => "pending",
        /// The PaymentIntent was made; its event will say how it ended.
        Processing => "processing",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

status!(
    /// One event to one webhook endpoint (section 9).
    DeliveryStatus {
        /// Due at its next attempt.
        Pending => "pending",
        Delivered => "delivered",
        /// Given up after the retry window.
        Failed => "failed",
    }
);

status!(
    /// A Stripe event as received.
    StripeEventStatus {
        Applied => "applied",
        /// The configuration could not apply it: kept for an admin to apply again.
        Failed => "failed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_sql_spelling() {
        for s in MailStatus::ALL {
            assert_eq!(MailStatus::parse(s.as_str()), Some(*s));
        }
        for s in PaymentJobStatus::ALL {
            assert_eq!(PaymentJobStatus::parse(s.as_str()), Some(*s));
        }
        for s in AutoTopupStatus::ALL {
            assert_eq!(AutoTopupStatus::parse(s.as_str()), Some(*s));
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(*s));
        }
        for s in StripeEventStatus::ALL {
            assert_eq!(StripeEventStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(AutoTopupStatus::parse("Succeeded"), None);
    }
}
