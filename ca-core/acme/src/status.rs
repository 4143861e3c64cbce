//! The states of ACME objects (RFC 8555 section 7.1.6).

use serde::{Deserialize, Serialize};

macro_rules! statuses {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// The status as the object's `status` field writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }
    };
}

statuses! {
    /// An account's status (RFC 8555 section 7.1.6).
    AccountStatus {
        /// Usable.
        Valid = "valid",
        /// Deactivated by its holder (section 7.3.6): every later request is refused.
        Deactivated = "deactivated",
        /// Revoked by the server.
        Revoked = "revoked",
    }
}

statuses! {
    /// An order's status (RFC 8555 section 7.1.6).
    OrderStatus {
        /// Some authorization is not valid yet.
        Pending = "pending",
        /// Every authorization is valid: the order may be finalized.
        Ready = "ready",
        /// Finalized; the certificate is being issued.
        Processing = "processing",
        /// The certificate was issued.
        Valid = "valid",
        /// An authorization failed, the order expired, or issuance failed.
        Invalid = "invalid",
    }
}

statuses! {
    /// An authorization's status (RFC 8555 section 7.1.6).
    AuthzStatus {
        /// No challenge succeeded yet.
        Pending = "pending",
        /// A challenge succeeded.
        Valid = "valid",
        /// A challenge failed.
        Invalid = "invalid",
        /// Deactivated by the client (section 7.5.2).
        Deactivated = "deactivated",
        /// Past its expiry.
        Expired = "expired",
        /// Revoked by the server.
        Revoked = "revoked",
    }
}

statuses! {
    /// A challenge's status (RFC 8555 section 7.1.6).
    ChallengeStatus {
        /// Not attempted yet.
        Pending = "pending",
        /// The client asked for validation; the server is at it.
        Processing = "processing",
        /// Validation succeeded.
        Valid = "valid",
        /// Validation failed.
        Invalid = "invalid",
    }
}
