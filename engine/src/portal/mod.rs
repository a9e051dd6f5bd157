//! The client portal: `/v1/public/*` (customer sign-up, login, messages, crypto deposit
//! requests) and `/v1/traders/me*` (the customer's own trader record and what hangs off it).
//! Every portal operation runs under the portal session cookie (`lumirecrm_portal_session`),
//! which never opens an operator operation, and answers for the session's own trader only.
//! Until the broker approves the customer, its session reaches only `/v1/public/me` (without
//! the trader record), its messages and logout: sign-up links to an existing trader by e-mail
//! alone, so approval is what opens that trader's records (see `views::approved_ids`).

pub mod auto_login;
pub mod chains;
mod me;
pub mod notifications;
mod public;
pub mod views;

use crate::http::api::{Api, Op};

pub fn routes(api: &mut Api) {
    public_routes(api);
    me_routes(api);
}

fn public_routes(api: &mut Api) {
    api.add(
        Op::post("/v1/public/signup", "postPublicSignup", "public-customers")
            .summary("Sign up for the client portal: creates a pending customer linked to the trader with the same e-mail (created if missing) and starts a portal session.")
            .body(r#"{"email":"ada@example.com","password":"a long passphrase","firstName":"Ada","lastName":"Lovelace","phone":"+441234567890","country":"GB","tenantSlug":"acme-fx"}"#),
        public::signup,
    );
    api.add(
        Op::post("/v1/public/login", "postPublicLogin", "public-customers")
            .summary("Customer login (rate limited per tenant and e-mail); sets the portal session cookie.")
            .action()
            .body(r#"{"email":"ada@example.com","password":"a long passphrase","tenantSlug":"acme-fx"}"#),
        public::login,
    );
    api.add(
        Op::post("/v1/public/logout", "postPublicLogout", "public-customers")
            .summary("Log out of the portal and revoke the portal session.")
            .status(204),
        public::logout,
    );
    api.add(
        Op::get("/v1/public/me", "getPublicMe", "public-customers")
            .summary("The logged-in customer, its trader record and the broker's branding.")
            .customer(),
        public::me,
    );
    api.add(
        Op::get(
            "/v1/public/messages",
            "getPublicMessages",
            "public-customers",
        )
        .summary("The customer's conversation with the broker, newest first.")
        .customer(),
        public::list_messages,
    );
    api.add(
        Op::post(
            "/v1/public/messages",
            "postPublicMessages",
            "public-customers",
        )
        .summary("Send a message to the broker.")
        .customer()
        .body(r#"{"body":"Hello, I uploaded my proof of address."}"#),
        public::post_message,
    );
    api.add(
        Op::post(
            "/v1/public/crypto-deposits",
            "postPublicCryptoDeposits",
            "public-customers",
        )
        .summary("Record a pending stablecoin deposit (chains: BSC, ETH, TRON, POLYGON in USDT; BASE in USDC). Moves no money: it is credited only when finance settles it.")
        .customer()
        .body(r#"{"chain":"BSC","amount":"250.00"}"#),
        public::crypto_deposit,
    );
}

fn me_routes(api: &mut Api) {
    api.add(
        Op::get("/v1/traders/me", "getTradersMe", "traders")
            .summary("The trader record linked to the logged-in portal customer.")
            .customer(),
        me::get_me,
    );
    api.add(
        Op::post(
            "/v1/traders/me/accept-terms",
            "postTradersMeAcceptTerms",
            "traders",
        )
        .summary("Record that the trader accepted a version of the terms and privacy policy.")
        .action()
        .customer()
        .body(r#"{"version":"2026-01"}"#),
        me::accept_terms,
    );
    api.add(
        Op::get("/v1/traders/me/accounts", "getTradersMeAccounts", "traders")
            .summary("The trader's own trading accounts.")
            .customer(),
        me::accounts,
    );
    api.add(
        Op::post(
            "/v1/traders/me/accounts/{id}/auto-login",
            "postTradersMeAccountsIdAutoLogin",
            "traders",
        )
        .summary("A single-use token (valid 60 s) and URL that open the account in the platform's web terminal.")
        .action()
        .customer(),
        auto_login::issue,
    );
    api.add(
        Op::get("/v1/traders/me/export", "getTradersMeExport", "traders")
            .summary("GDPR export: all data held about the trader, as one JSON document.")
            .customer(),
        me::export,
    );
    api.add(
        Op::get(
            "/v1/traders/me/notifications",
            "getTradersMeNotifications",
            "traders",
        )
        .summary("The trader's notifications, newest first (filter: unread=true).")
        .customer(),
        me::notifications,
    );
    api.add(
        Op::get(
            "/v1/traders/me/positions",
            "getTradersMePositions",
            "traders",
        )
        .summary("The trader's positions (filters: status=open|closed, accountId).")
        .customer(),
        me::positions,
    );
    api.add(
        Op::patch(
            "/v1/traders/me/profile",
            "patchTradersMeProfile",
            "traders",
        )
        .summary("Self-service profile edit (phone, address, name, date of birth, country); a change of name, date of birth or country sends KYC back to pending.")
        .customer()
        .body(r#"{"phone":"+441234567899","addressLine1":"12 Analytical Row","addressLine2":null,"city":"London","postalCode":"N1 9GU","region":"Greater London","firstName":"Ada","lastName":"King","dateOfBirth":"1990-12-10","country":"GB"}"#),
        me::update_profile,
    );
    api.add(
        Op::get(
            "/v1/traders/me/referrals",
            "getTradersMeReferrals",
            "traders",
        )
        .summary("Traders referred by this trader (first name and last initial only).")
        .customer(),
        me::referrals,
    );
    api.add(
        Op::get("/v1/traders/me/timeline", "getTradersMeTimeline", "traders")
            .summary(
                "Transactions, portal logins and messages merged, newest first (filter: type).",
            )
            .customer(),
        me::timeline,
    );
    api.add(
        Op::get(
            "/v1/traders/me/transactions",
            "getTradersMeTransactions",
            "traders",
        )
        .summary("The trader's transactions (filters: kind, status).")
        .customer(),
        me::transactions,
    );
    api.add(
        Op::get(
            "/v1/traders/me/withdrawal-allowlist",
            "getTradersMeWithdrawalAllowlist",
            "traders",
        )
        .summary("The trader's crypto withdrawal address allowlist.")
        .customer(),
        me::allowlist,
    );
    api.add(
        Op::post(
            "/v1/traders/me/withdrawal-allowlist",
            "postTradersMeWithdrawalAllowlist",
            "traders",
        )
        .summary("Add a withdrawal address; it becomes active 24 hours later (activeFrom) and the customer is e-mailed.")
        .customer()
        .body(r#"{"chain":"TRON","address":"TJRabPrwbZy45sbavfcjinPJC18kjpRTv8","label":"My Ledger"}"#),
        me::add_allowlist,
    );
}
