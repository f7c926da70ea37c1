//! Tasks started from a GitHub issue of the project's repository (issue 16, item
//! 7): the open issues to pick from, the new task's title and prompt from the
//! picked one, and `Closes #N` in the pull request AnyCode opens for the task.

use crate::{Engine, Error, NewTask, Result};
use anycode_github::Issue;

/// The prompt a task started from `issue` gets: its title, its body and its link.
pub(crate) fn issue_prompt(issue: &Issue) -> String {
    let body = issue.body.trim();
    if body.is_empty() {
        format!("{}\n\n{}", issue.title, issue.url)
    } else {
        format!("{}\n\n{body}\n\n{}", issue.title, issue.url)
    }
}

impl Engine {
    /// The open issues of the project's GitHub repository (its `origin`), newest
    /// first, pull requests left out.
    ///
    /// Errors: `PROJECT_NOT_FOUND`; `INVALID_INPUT` without a GitHub `origin`;
    /// GitHub's errors (`GITHUB_NOT_FOUND`, `GITHUB_BAD_CREDENTIALS`, …).
    pub async fn github_issues(&self, project_id: &str) -> Result<Vec<Issue>> {
        let project = self.project(project_id).await?;
        let repo = self
            .project_github(&project)
            .await
            .ok_or_else(|| Error::Invalid(format!("the project {:?} has no GitHub remote named origin (owner/name URL)", project.name)))?;
        Ok(self.client().await?.open_issues(&repo).await?)
    }

    /// A new task's input completed from its `issue`: the issue's title when the
    /// title is empty, its title, body and link as the prompt when none is given.
    /// Returns the issue too (recorded with the task once it is made).
    ///
    /// Errors: as [`Engine::github_issues`]; `INVALID_INPUT` for a closed issue.
    pub(crate) async fn new_task_from_issue(&self, project_id: &str, mut req: NewTask) -> Result<(NewTask, Option<Issue>)> {
        let Some(number) = req.issue else { return Ok((req, None)) };
        let project = self.project(project_id).await?;
        let repo = self
            .project_github(&project)
            .await
            .ok_or_else(|| Error::Invalid(format!("issue #{number}: the project {:?} has no GitHub remote named origin", project.name)))?;
        let issue = self.client().await?.issue(&repo, number).await?;
        if issue.state != "open" {
            return Err(Error::Invalid(format!("issue #{number} of {repo} is {}: pick an open issue", issue.state)));
        }
        if req.title.trim().is_empty() {
            req.title = issue.title.chars().take(crate::MAX_TITLE).collect();
        }
        if req.prompt.as_deref().is_none_or(|p| p.trim().is_empty()) {
            req.prompt = Some(issue_prompt(&issue));
        }
        Ok((req, Some(issue)))
    }

    /// Records that task `task_id` started from `issue` (logged on failure).
    pub(crate) async fn record_issue(&self, task_id: &str, issue: Option<Issue>) {
        let Some(issue) = issue else { return };
        let id = task_id.to_string();
        if let Err(e) = self.db(move |s| Ok(s.set_task_issue(&id, issue.number, &issue.url)?)).await {
            tracing::warn!(task = %task_id, error = %e, "recording the task's issue failed");
        }
    }

    /// `body` with `Closes #N` first when the task started from issue N (and the
    /// body does not say it already).
    pub(crate) async fn with_closes(&self, task_id: &str, body: String) -> String {
        let id = task_id.to_string();
        match self.db(move |s| Ok(s.task_issue(&id)?)).await {
            Ok(Some((n, _))) if !body.contains(&format!("Closes #{n}")) => format!("Closes #{n}\n\n{body}"),
            _ => body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_has_the_title_body_and_link() {
        let i = Issue { number: 7, title: "Fix login".into(), body: "It fails.\n".into(), url: "https://github.com/o/n/issues/7".into(), state: "open".into() };
        assert_eq!(issue_prompt(&i), "Fix login\n\nIt fails.\n\nhttps://github.com/o/n/issues/7");
        let empty = Issue { body: "  ".into(), ..i };
        assert_eq!(issue_prompt(&empty), "Fix login\n\nhttps://github.com/o/n/issues/7");
    }
}
