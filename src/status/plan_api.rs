//! `POST /api/v1/plan`: what applying a directory of spec files would do, for the `plan` command.
//!
//! The client sends the files' text (and the problems it met reading files it could not send);
//! the server parses them with its own parser and hashes them with its own hash, so a generation
//! means what it means to the running controller even when the client is another version. The
//! parsed set goes to the controller loop as a [`ControlCommand::Preview`], which runs the loop's
//! own planning pieces on its own state (`plan::preview`) and changes nothing.
//!
//! Parsing happens here, on a blocking thread, not in the loop: the loop only compares
//! generations and decides the specs that changed.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{CONTROL_TIMEOUT, ControlCommand, ServerState, SpecErrorView};
use crate::plan::Desired;
use crate::plan::preview::{Preview, Proposal};
use crate::spec::SpecId;

/// The path, shared by the server and [`post_plan`].
pub const PLAN_PATH: &str = "/api/v1/plan";

/// The largest request accepted: 100,000 spec files of a few hundred bytes each.
pub const MAX_PLAN_BODY: usize = 128 * 1024 * 1024;

/// The body of `POST /api/v1/plan`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanRequest {
    /// The directory as the client names it (`desired`), for messages: `desired/web.toml:3:1`.
    pub root: String,
    /// Every spec file the client read, by spec id.
    pub files: Vec<PlanFile>,
    /// Files the client could not send (unreadable, not UTF-8, a name that is not a spec id),
    /// by spec id or by path, with the problem.
    pub errors: Vec<PlanFileError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanFile {
    /// `team-a/web` for `team-a/web.toml`.
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanFileError {
    pub key: String,
    pub error: SpecErrorView,
}

pub(super) async fn plan(
    State(state): State<ServerState>,
    body: Result<Json<PlanRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            return (
                rejection.status(),
                format!(
                    "expected a JSON body {{\"root\": ..., \"files\": [{{\"id\": ..., \"text\": ...}}], \"errors\": [...]}}: {}\n",
                    rejection.body_text()
                ),
            )
                .into_response();
        }
    };
    let policy = std::sync::Arc::clone(&state.access.policy);
    let proposal = match tokio::task::spawn_blocking(move || proposal_with(request, &policy)).await
    {
        Ok(proposal) => proposal,
        Err(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "parsing the spec files failed\n",
            )
                .into_response();
        }
    };
    let (reply, answer) = oneshot::channel();
    let asked = async {
        state
            .control
            .send(ControlCommand::Preview {
                proposal: Box::new(proposal),
                reply,
            })
            .await
            .ok()?;
        answer.await.ok()
    };
    match tokio::time::timeout(CONTROL_TIMEOUT, asked).await {
        Ok(Some(preview)) => Json(preview).into_response(),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller is not running, so there is nothing to compare with\n",
        )
            .into_response(),
        Err(_elapsed) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the controller did not answer within {} s\n",
                CONTROL_TIMEOUT.as_secs()
            ),
        )
            .into_response(),
    }
}

/// Parses the files of a request as a re-read of the directory would.
pub fn proposal(request: PlanRequest) -> Proposal {
    proposal_with(request, &crate::spec::SpecPolicy::default())
}

/// [`proposal`] under the controller's spec policy (`--allowed-users`).
pub fn proposal_with(request: PlanRequest, policy: &crate::spec::SpecPolicy) -> Proposal {
    let root = if request.root.is_empty() {
        "desired".to_owned()
    } else {
        request.root.trim_end_matches('/').to_owned()
    };
    let mut specs = BTreeMap::new();
    let mut invalid = BTreeMap::new();
    for file in request.files {
        let shown = format!("{root}/{}.toml", file.id);
        let id = match SpecId::new(file.id.as_str()) {
            Ok(id) => id,
            Err(e) => {
                invalid.insert(
                    format!("{}.toml", file.id),
                    format!("{shown}: invalid spec file name: {e}"),
                );
                continue;
            }
        };
        match crate::spec::parse_with(&id, &shown, &file.text, policy) {
            Ok(spec) => {
                specs.insert(id, Desired::new(spec));
            }
            Err(error) => {
                invalid.insert(id.as_str().to_owned(), error.to_string());
            }
        }
    }
    for problem in request.errors {
        let e = &problem.error;
        let field = if e.field.is_empty() {
            String::new()
        } else {
            format!(" {}:", e.field)
        };
        invalid.insert(
            problem.key,
            format!("{}:{field} {}", e.location(), e.message),
        );
    }
    Proposal { specs, invalid }
}

/// What went wrong asking for a plan.
pub type PlanClientError = super::StatusClientError;

/// Sends `request` to the status server at `status_url` and returns the preview.
pub async fn post_plan(
    status_url: &str,
    request: &PlanRequest,
    token: Option<&super::auth::Token>,
) -> Result<Preview, PlanClientError> {
    let url = super::join_url(status_url, PLAN_PATH);
    let bytes = serde_json::to_vec(request).map_err(|source| super::StatusClientError::Decode {
        url: url.clone(),
        source,
    })?;
    let post = super::with_token(super::client()?.post(&url), token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes);
    let body = super::text_of(url.clone(), post).await?;
    serde_json::from_str(&body).map_err(|source| super::StatusClientError::Decode { url, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_with_the_servers_parser_and_problems_pass_through() {
        let request = PlanRequest {
            root: "repo/desired/".to_owned(),
            files: vec![
                PlanFile {
                    id: "web".to_owned(),
                    text: "command = \"sleep 100\"\ninstances = 2\n".to_owned(),
                },
                PlanFile {
                    id: "typo".to_owned(),
                    text: "command = \"true\"\ninstnaces = 2\n".to_owned(),
                },
                PlanFile {
                    id: "Bad".to_owned(),
                    text: "command = \"true\"\n".to_owned(),
                },
            ],
            errors: vec![PlanFileError {
                key: "unreadable".to_owned(),
                error: SpecErrorView {
                    file: "repo/desired/unreadable.toml".to_owned(),
                    message: "cannot read: permission denied".to_owned(),
                    ..SpecErrorView::default()
                },
            }],
        };
        let proposal = proposal(request);
        let web = &proposal.specs[&SpecId::new("web").unwrap()];
        assert_eq!(web.spec.instances, 2);
        assert_eq!(web.generation, web.spec.content_hash().to_string());
        assert!(
            proposal.invalid["typo"].starts_with("repo/desired/typo.toml:2:1:"),
            "{:?}",
            proposal.invalid
        );
        assert!(proposal.invalid["Bad.toml"].contains("invalid spec file name"));
        assert_eq!(
            proposal.invalid["unreadable"],
            "repo/desired/unreadable.toml: cannot read: permission denied"
        );
    }

    #[test]
    fn a_plan_reads_the_files_under_the_controllers_allowed_users() {
        let request = PlanRequest {
            root: "desired".to_owned(),
            files: vec![PlanFile {
                id: "web".to_owned(),
                text: "command = \"true\"\nuser = \"root\"\n".to_owned(),
            }],
            errors: Vec::new(),
        };
        let policy = crate::spec::SpecPolicy {
            allowed_users: Some(["nobody".to_owned()].into()),
            ..Default::default()
        };
        let proposal = proposal_with(request, &policy);
        assert!(proposal.specs.is_empty());
        assert!(
            proposal.invalid["web"]
                .contains("desired/web.toml:2:8: user: user `root` is not allowed"),
            "{:?}",
            proposal.invalid
        );
    }
}
