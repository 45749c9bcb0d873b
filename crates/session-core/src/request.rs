//! Request bodies decoded into validated values, in the spec's check order:
//! decode, then missing fields, then unknown fields, then each field's type and
//! format in the order the spec lists them.

use uuid::Uuid;

use crate::error::Rejection;
use crate::json::{Object, Schema};
use crate::partner::Partner;
use crate::session::EndUser;
use crate::value::{
    Address, Among, Amount, ClientIp, Code, Email, PartnerUserId, RedirectUrl, TxType,
};

/// A validated `POST /widget/session` body, with partner defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub user: EndUser,
    /// The network, and whether the partner's widget lists it.
    pub network: Among,
    /// The currency, and whether the partner's widget lists it.
    pub currency: Among,
    pub amount: Amount,
    pub tx_type: TxType,
    pub redirect_url: Option<RedirectUrl>,
    pub client_ip: Option<ClientIp>,
    /// Present only for partners that may send their own address.
    pub address: Option<Address>,
}

pub const SESSION_SCHEMA: Schema = Schema {
    required: &[
        "partner_user_id",
        "user_email",
        "network",
        "currency",
        "amount",
    ],
    optional: &["type", "redirect_url", "client_ip", "address"],
};

fn field<T>(name: &str, parsed: Result<T, &'static str>) -> Result<T, Rejection> {
    parsed.map_err(|why| Rejection::invalid(name, why))
}

impl SessionRequest {
    /// Decodes and validates a session request for `partner`. Partner
    /// configuration is needed here for the currency's decimals, the redirect
    /// host list and whether `address` is read at all.
    pub fn decode(body: &[u8], partner: &Partner) -> Result<Self, Rejection> {
        Self::from_object(&Object::parse(body)?, partner)
    }

    /// Like [`Self::decode`], for a body already parsed.
    pub fn from_object(object: &Object<'_>, partner: &Partner) -> Result<Self, Rejection> {
        object.check(&SESSION_SCHEMA)?;
        let partner_user_id = field(
            "partner_user_id",
            PartnerUserId::parse(object.required_str("partner_user_id")?),
        )?;
        let email = field(
            "user_email",
            Email::parse(object.required_str("user_email")?),
        )?;
        let view = &partner.widget.view;
        let network = field(
            "network",
            Code::parse_among(object.required_str("network")?, &view.networks),
        )?;
        let currency = field(
            "currency",
            Code::parse_among(object.required_str("currency")?, &view.currencies),
        )?;
        let decimals = partner.widget.decimals_of(currency.code());
        let amount = field(
            "amount",
            Amount::parse(object.required_str("amount")?, decimals),
        )?;
        let tx_type = match object.str("type")? {
            Some(text) => field("type", TxType::parse(text))?,
            None => partner.widget.default_type,
        };
        let redirect_url = match object.str("redirect_url")? {
            Some(text) => Some(field(
                "redirect_url",
                RedirectUrl::parse(text, &partner.redirect_hosts),
            )?),
            None => partner.widget.redirect_url.clone(),
        };
        let client_ip = object
            .str("client_ip")?
            .map(|text| field("client_ip", ClientIp::parse(text)))
            .transpose()?;
        // Partners not allowed to choose the address may send anything here: the
        // seed page promises the value is ignored, so it is not even type-checked.
        let address = if partner.accept_client_address {
            object
                .str("address")?
                .map(|text| {
                    field(
                        "address",
                        Address::parse(text, network.code(), partner.address_rule()),
                    )
                })
                .transpose()?
        } else {
            None
        };
        Ok(Self {
            user: EndUser {
                partner_user_id,
                email,
            },
            network,
            currency,
            amount,
            tx_type,
            redirect_url,
            client_ip,
            address,
        })
    }
}

/// A validated `POST /widget/init` body: what the widget was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitRequest {
    pub widget_id: Uuid,
    pub merchant_transaction_id: Uuid,
    pub init_token: String,
    pub signature: String,
    pub address: String,
    pub currency: String,
    pub network: String,
    pub amount: String,
    pub tx_type: String,
}

pub const INIT_SCHEMA: Schema = Schema {
    required: &[
        "widget_id",
        "merchant_transaction_id",
        "init_token",
        "signature",
        "address",
        "currency",
        "network",
        "amount",
        "type",
    ],
    optional: &[],
};

impl InitRequest {
    pub fn decode(body: &[u8]) -> Result<Self, Rejection> {
        let object = Object::parse(body)?;
        object.check(&INIT_SCHEMA)?;
        let text = |name: &str| object.required_str(name).map(str::to_owned);
        Ok(Self {
            widget_id: object.required_uuid("widget_id")?,
            merchant_transaction_id: object.required_uuid("merchant_transaction_id")?,
            init_token: text("init_token")?,
            signature: text("signature")?,
            address: text("address")?,
            currency: text("currency")?,
            network: text("network")?,
            amount: text("amount")?,
            tx_type: text("type")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::partner::tests::acme;

    const SEED: &str = crate::example::SEED_BODY;

    fn decode(body: &str) -> Result<SessionRequest, Rejection> {
        SessionRequest::decode(body.as_bytes(), &acme().build().expect("partner"))
    }

    /// Replaces or adds `key` in the seed body (`None` removes it).
    fn with(key: &str, value: Option<&str>) -> String {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(SEED).expect("seed");
        match value {
            Some(raw) => object.insert(
                key.to_owned(),
                serde_json::from_str(raw).expect("raw JSON value"),
            ),
            None => object.remove(key),
        };
        serde_json::to_string(&object).expect("serialise")
    }

    #[test]
    fn the_seed_example_decodes_with_defaults() {
        let request = decode(SEED).expect("seed request is valid");
        assert_eq!(request.user.partner_user_id.as_str(), "user-123");
        assert_eq!(request.amount.as_str(), "100");
        assert_eq!(request.tx_type, TxType::Buy);
        assert_eq!(
            request.redirect_url.as_ref().map(RedirectUrl::as_str),
            Some("https://app.acme.example/done")
        );
        assert_eq!(
            request.client_ip.as_ref().map(ClientIp::as_str),
            Some("203.0.113.42")
        );
        assert_eq!(request.address, None);
    }

    #[test]
    fn each_field_rule_answers_with_its_code_and_names_the_field() {
        use ErrorKind::*;
        let cases: Vec<(String, ErrorKind, &str)> = vec![
            (
                with("partner_user_id", None),
                MissingParam,
                "partner_user_id",
            ),
            (with("user_email", Some("null")), MissingParam, "user_email"),
            (with("amount", None), MissingParam, "amount"),
            (with("nickname", Some("\"x\"")), ValidationError, "nickname"),
            (
                with("partner_user_id", Some("123")),
                ValidationError,
                "partner_user_id",
            ),
            (
                with("partner_user_id", Some("\"\"")),
                ValidationError,
                "partner_user_id",
            ),
            (
                with("user_email", Some("\"not-an-email\"")),
                ValidationError,
                "user_email",
            ),
            (
                with("network", Some("\"TRC 20\"")),
                ValidationError,
                "network",
            ),
            (
                with("currency", Some("[\"USDT\"]")),
                ValidationError,
                "currency",
            ),
            (with("amount", Some("100")), ValidationError, "amount"),
            (with("amount", Some("\"1e3\"")), ValidationError, "amount"),
            (
                with("amount", Some("\"1.1234567\"")),
                ValidationError,
                "amount",
            ), // USDT has 6 decimals here
            (with("type", Some("\"hold\"")), ValidationError, "type"),
            (
                with("redirect_url", Some("\"http://evil.example/\"")),
                ValidationError,
                "redirect_url",
            ),
            (
                with("client_ip", Some("\"localhost\"")),
                ValidationError,
                "client_ip",
            ),
            (
                with("client_ip", Some("false")),
                ValidationError,
                "client_ip",
            ),
        ];
        for (body, kind, field) in cases {
            let rejection = decode(&body).expect_err(field);
            assert_eq!(rejection.kind(), kind, "{field}: {}", rejection.message());
            assert!(
                rejection.message().contains(field),
                "message {:?} should name {field}",
                rejection.message()
            );
        }
    }

    #[test]
    fn check_order_decode_missing_unknown_format() {
        // Each body breaks two rules; the earlier check must answer.
        let cases = [
            (
                r#"{"partner_user_id":"u","partner_user_id":"v"}"#,
                ErrorKind::DecodeError,
            ),
            (r#"{"extra":1,"amount":"1"}"#, ErrorKind::MissingParam),
            (
                &with("extra", Some("1")).replace("\"100\"", "\"-1\"") as &str,
                ErrorKind::ValidationError,
            ),
        ];
        for (body, kind) in cases {
            assert_eq!(decode(body).map_err(|r| r.kind()), Err(kind), "{body}");
        }
        let unknown_first =
            decode(&with("extra", Some("1")).replace("\"100\"", "\"-1\"")).expect_err("invalid");
        assert!(
            unknown_first.message().contains("extra"),
            "unknown field is reported before formats"
        );
    }

    #[test]
    fn optional_null_is_absent() {
        let request = decode(&with("type", Some("null"))).expect("null type");
        assert_eq!(request.tx_type, TxType::Buy);
        assert!(
            decode(&with("client_ip", Some("null")))
                .expect("null ip")
                .client_ip
                .is_none()
        );
    }

    #[test]
    fn address_is_ignored_unless_the_partner_accepts_it() {
        assert_eq!(
            decode(&with("address", Some("42")))
                .expect("ignored")
                .address,
            None
        );
        let mut spec = acme();
        spec.accept_client_address = true;
        let partner = spec.build().expect("partner");
        let good = with("address", Some("\"TXYZabcdefghijkmnopqrstuvwxyz99999\""));
        let request = SessionRequest::decode(good.as_bytes(), &partner).expect("address accepted");
        assert_eq!(
            request.address.as_ref().map(Address::as_str),
            Some("TXYZabcdefghijkmnopqrstuvwxyz99999")
        );
        let bad = with(
            "address",
            Some("\"0x52908400098527886E0F7030069857D2E4169EE7\""),
        );
        let rejection =
            SessionRequest::decode(bad.as_bytes(), &partner).expect_err("EVM address on TRC20");
        assert_eq!(rejection.kind(), ErrorKind::ValidationError);
    }

    #[test]
    fn client_ip_is_canonicalised() {
        let request =
            decode(&with("client_ip", Some("\"::FFFF:203.0.113.42\""))).expect("mapped v6");
        assert_eq!(
            request.client_ip.as_ref().map(ClientIp::as_str),
            Some("203.0.113.42")
        );
    }

    #[test]
    fn init_request_requires_every_field_and_uuids() {
        let body = r#"{"widget_id":"fb359d09-fff6-4b1f-906c-b9062b135065","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000",
            "init_token":"t","signature":"s","address":"a","currency":"c","network":"n","amount":"1","type":"buy"}"#;
        assert!(InitRequest::decode(body.as_bytes()).is_ok());
        let no_type = body.replace(r#","type":"buy""#, "");
        assert_eq!(
            InitRequest::decode(no_type.as_bytes()).map_err(|r| r.kind()),
            Err(ErrorKind::MissingParam)
        );
        let bad_id = body.replace("550e8400-e29b-41d4-a716-446655440000", "nope");
        assert_eq!(
            InitRequest::decode(bad_id.as_bytes()).map_err(|r| r.kind()),
            Err(ErrorKind::ValidationError)
        );
    }
}
