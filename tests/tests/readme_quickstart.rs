//! The README opens where a new user starts: after the title and the commands block, "In your
//! service" and "In your firmware", the same text as each adapter's crate-root quickstart
//! (`adapters/*/QUICKSTART.md`, whose Rust blocks are doctests in both places), then the
//! service binary, then the chapter's examples.

const README: &str = include_str!("../../README.md");
const SERVICE: &str = include_str!("../../adapters/tokio/QUICKSTART.md");
const FIRMWARE: &str = include_str!("../../adapters/embassy/QUICKSTART.md");

fn at(heading: &str) -> usize {
    README
        .find(&format!("\n{heading}\n"))
        .expect("the README has each of the headings")
}

#[test]
fn the_readme_carries_each_quickstart_word_for_word() {
    assert!(
        README.contains(SERVICE.trim_end()),
        "adapters/tokio/QUICKSTART.md"
    );
    assert!(
        README.contains(FIRMWARE.trim_end()),
        "adapters/embassy/QUICKSTART.md"
    );
}

#[test]
fn the_readme_opens_with_the_quickstarts_then_the_binary_then_the_chapter() {
    let commands = README.find("```sh\n").expect("the commands block");
    let first_section = README.find("\n## ").expect("a section");
    assert!(commands < first_section, "the commands block comes first");
    let order = [
        at("## In your service"),
        at("## In your firmware"),
        at("## The host service"),
        at("## The chapter's examples, working"),
    ];
    assert_eq!(first_section, order[0], "In your service opens the README");
    assert!(order.is_sorted(), "{order:?}");
}
