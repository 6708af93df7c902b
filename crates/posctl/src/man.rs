//! `posctl man`: one complete page. Every subcommand is in it with its
//! arguments, then exit status, environment, files and examples, so the page
//! sends nobody to a page that is not installed.

use clap::{Arg, Command};
use std::io::{self, Write};

/// Renders `cli`'s page as roff.
pub fn render(cli: Command, w: &mut dyn Write) -> io::Result<()> {
    let man = clap_mangen::Man::new(cli.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    writeln!(w, ".SH COMMANDS")?;
    commands(&cli, &mut vec![cli.get_name().to_string()], w)?;
    w.write_all(SECTIONS.as_bytes())?;
    man.render_version_section(w)
}

/// A subsection per command that does something: `posctl chain show`, not `posctl chain`.
fn commands(cmd: &Command, path: &mut Vec<String>, w: &mut dyn Write) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        path.push(sub.get_name().to_string());
        if sub.has_subcommands() {
            commands(sub, path, w)?;
        } else {
            command(sub, &path.join(" "), w)?;
        }
        path.pop();
    }
    Ok(())
}

fn command(cmd: &Command, name: &str, w: &mut dyn Write) -> io::Result<()> {
    let args: Vec<&Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    let mut synopsis = format!("\\fB{}\\fR", escape(name));
    for a in &args {
        synopsis.push(' ');
        synopsis.push_str(&usage(a));
    }
    let about = cmd.get_long_about().or(cmd.get_about());
    writeln!(w, ".TP\n{synopsis}")?;
    writeln!(
        w,
        "{}",
        escape(&about.map(|a| a.to_string()).unwrap_or_default())
    )?;
    if args.is_empty() {
        return Ok(());
    }
    writeln!(w, ".RS")?;
    for a in args {
        let help = a.get_long_help().or(a.get_help());
        let mut text = help.map(|h| h.to_string()).unwrap_or_default();
        if a.get_action().takes_values() {
            let values: Vec<String> = a
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            if !values.is_empty() {
                text.push_str(&format!(": one of {}", values.join(", ")));
            }
        }
        writeln!(w, ".TP\n{}\n{}", term(a), escape(text.trim()))?;
    }
    writeln!(w, ".RE")
}

/// `--from FROM`, `--all` or `INDEX|HASH`, in roff fonts.
fn term(a: &Arg) -> String {
    let value = a
        .get_value_names()
        .and_then(|v| v.first())
        .map_or_else(|| a.get_id().as_str().to_uppercase(), |v| v.to_string());
    match a.get_long() {
        Some(long) if a.get_action().takes_values() => {
            format!("\\fB\\-\\-{}\\fR \\fI{}\\fR", escape(long), escape(&value))
        }
        Some(long) => format!("\\fB\\-\\-{}\\fR", escape(long)),
        None => format!("\\fI{}\\fR", escape(&value)),
    }
}

/// An argument in a synopsis: optional ones in brackets.
fn usage(a: &Arg) -> String {
    if a.is_required_set() {
        term(a)
    } else {
        format!("[{}]", term(a))
    }
}

/// Text as roff reads it literally.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SECTIONS: &str = r#".SH "HASHES AND ADDRESSES"
Tables show the first 16 hex digits of a hash or address and an ellipsis; \fB\-\-wide\fR shows them whole.
\fBblock\fR and \fBvalidator\fR take a whole hash or address, or any prefix of 4 or more hex digits that only one block or validator has (the ellipsis may be pasted along).
posd lists the matches of an ambiguous prefix.
A whole number is a block index; if no block has that index, its digits are taken as a hash prefix.
.SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
Failed: posd answered with an error (no such block or validator, an ambiguous prefix), \fBchain verify\fR or \fBlottery explain\fR found a fault, \fBchain follow\fR found posd serving another chain, or \fBbackup\fR refused its target or what posd sent.
.TP
\fB2\fR
Usage: an unknown command, a bad argument or option.
.TP
\fB3\fR
Cannot reach or may not use posd: the socket is missing or nobody listens on it, the user is not allowed (not in posd's group), it is not a posd admin socket, posd refuses this posctl's protocol version, or posd did not answer within \fB\-\-timeout\fR.
.SH ENVIRONMENT
.TP
\fBPOSD_SOCKET\fR
posd's admin socket, when \fB\-\-socket\fR is not given.
.SH FILES
.TP
\fI/run/posd/admin.sock\fR
posd's admin socket under its systemd unit, mode 0660, group posd.
Root, user posd and members of group posd may use it; to add a user: \fBsudo usermod \-aG posd\fR \fIUSER\fR, then log in again.
.TP
\fI./posd\-data/admin.sock\fR
posd's admin socket when it runs by hand with the default data directory; used when \fI/run/posd/admin.sock\fR does not exist.
.TP
\fI/etc/posd/posd.toml\fR
posd's config under systemd; its \fBadmin_socket\fR key moves the socket.
.SH EXAMPLES
.TP
\fBposctl status\fR
Height, tip, validators, pending proposals and when the next round closes.
.TP
\fBposctl chain show \-\-last 10\fR
The last ten blocks.
.TP
\fBposctl block 9a6c9e01\fR
The block whose hash starts with 9a6c9e01.
.TP
\fBposctl \-\-wide validators \-\-all\fR
Every validator, slashed ones too, with whole addresses.
.TP
\fBposctl lottery run && posctl lottery explain 1\fR
Close the round now, then replay block 1's draw here.
.TP
\fBposctl \-\-json chain show | jq \-r .Hash\fR
Every block hash, for a script.
.TP
\fBposctl \-\-timeout 2s chain verify\fR
Re-check the whole chain; give up if posd is silent for 2 seconds.
.TP
\fBposctl \-\-json chain follow\fR
Each new block as a JSON line as it commits, across posd restarts, until interrupted.
.TP
\fBposctl export chain.jsonl\fR
The whole state, consistent, in the export format, as a file of mode 0600 (it holds the lottery's pending secret); \fBposd import chain.jsonl \-\-data\-dir\fR \fIDIR\fR rebuilds a data directory from it that goes on with the chain.
.TP
\fBposctl backup /var/backups/posd\-$(date +%F)\fR
A verified copy of the running chain that \fBposd \-\-data\-dir\fR starts from as it is.
.TP
\fBposctl \-\-timeout 10m cluster add 2 10.0.0.2:9100\fR
On a cluster's leader: add node 2; waits while it receives the chain (docs/CLUSTER.md).
.SH "SEE ALSO"
\fBposd\fR(8), \fBsystemctl\fR(1), \fBjournalctl\fR(1)
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn roff_control_characters_are_escaped() {
        assert_eq!(escape(r"a-b\c"), r"a\-b\ec");
        assert_eq!(escape(".x\n'y"), "\\&.x\n\\&'y");
    }

    /// `posctl chain show`, `posctl status`, ...: the commands that do something.
    fn leaves(cmd: &Command, path: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            let name = format!("{path} {}", sub.get_name());
            if sub.has_subcommands() {
                leaves(sub, &name, out);
            } else {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_command_has_its_entry_and_no_page_is_referenced() {
        let cli = crate::Cli::command();
        let mut page = vec![];
        render(cli.clone(), &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        let mut names = vec![];
        leaves(&cli, "posctl", &mut names);
        assert!(names.len() >= 10, "{names:?}");
        for name in names {
            let entry = format!(".TP\n\\fB{}\\fR", escape(&name));
            assert!(page.contains(&entry), "no entry for {name}");
        }
        assert!(!page.contains("posctl\\-status"), "points to a sub-page");
    }
}
