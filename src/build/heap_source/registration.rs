//! Finding `register!` in heap sources with a Rust parser (syn), so a missing
//! or doubled registration is reported at the user's own lines, and comments,
//! strings, raw strings and char literals are what rustc says they are.
//!
//! A registration under `#[cfg(...)]` (on itself or on an enclosing item),
//! or inside another macro's input (`cfg_if!`), may or may not be compiled:
//! it is conditional, and only unconditional ones can be "more than one".

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// One `register!` invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// 1-based.
    pub line: usize,
    /// Under a `#[cfg]`, or in another macro's input: maybe not compiled.
    pub conditional: bool,
}

/// Every `register!` in `text`; None if it is not Rust syn can parse (then
/// rustc's own error says where, better than a guess of ours).
pub fn registrations(text: &str) -> Option<Vec<Registration>> {
    let file = syn::parse_file(text).ok()?;
    let mut finder = Finder { cfg_depth: 0, found: Vec::new() };
    finder.visit_file(&file);
    finder.found.sort_by_key(|r| r.line);
    Some(finder.found)
}

struct Finder {
    /// How many enclosing items carry `#[cfg]`.
    cfg_depth: usize,
    found: Vec<Registration>,
}

impl Finder {
    fn under(&mut self, attrs: &[syn::Attribute], f: impl FnOnce(&mut Self)) {
        let cfg = attrs.iter().any(|a| a.path().is_ident("cfg"));
        self.cfg_depth += cfg as usize;
        f(self);
        self.cfg_depth -= cfg as usize;
    }

    /// `register` `!` anywhere in another macro's tokens.
    fn scan(&mut self, tokens: &TokenStream) {
        let mut previous: Option<TokenTree> = None;
        for token in tokens.clone() {
            match &token {
                TokenTree::Group(g) => self.scan(&g.stream()),
                TokenTree::Punct(p) if p.as_char() == '!' => {
                    if let Some(TokenTree::Ident(id)) = &previous {
                        if id == "register" {
                            self.found.push(Registration { line: id.span().start().line, conditional: true });
                        }
                    }
                }
                _ => {}
            }
            previous = Some(token);
        }
    }
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        match mac.path.segments.last() {
            Some(last) if last.ident == "register" => {
                let line = last.ident.span().start().line;
                self.found.push(Registration { line, conditional: self.cfg_depth > 0 });
            }
            _ => self.scan(&mac.tokens),
        }
    }

    fn visit_item_macro(&mut self, i: &'ast syn::ItemMacro) {
        self.under(&i.attrs, |v| visit::visit_item_macro(v, i));
    }
    fn visit_stmt_macro(&mut self, i: &'ast syn::StmtMacro) {
        self.under(&i.attrs, |v| visit::visit_stmt_macro(v, i));
    }
    fn visit_expr_macro(&mut self, i: &'ast syn::ExprMacro) {
        self.under(&i.attrs, |v| visit::visit_expr_macro(v, i));
    }
    fn visit_item_mod(&mut self, i: &'ast syn::ItemMod) {
        self.under(&i.attrs, |v| visit::visit_item_mod(v, i));
    }
    fn visit_item_fn(&mut self, i: &'ast syn::ItemFn) {
        self.under(&i.attrs, |v| visit::visit_item_fn(v, i));
    }
    fn visit_item_const(&mut self, i: &'ast syn::ItemConst) {
        self.under(&i.attrs, |v| visit::visit_item_const(v, i));
    }
    fn visit_item_static(&mut self, i: &'ast syn::ItemStatic) {
        self.under(&i.attrs, |v| visit::visit_item_static(v, i));
    }
    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        self.under(&i.attrs, |v| visit::visit_item_impl(v, i));
    }
    fn visit_impl_item_fn(&mut self, i: &'ast syn::ImplItemFn) {
        self.under(&i.attrs, |v| visit::visit_impl_item_fn(v, i));
    }
    fn visit_expr_block(&mut self, i: &'ast syn::ExprBlock) {
        self.under(&i.attrs, |v| visit::visit_expr_block(v, i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<usize> {
        registrations(text).expect("parses").iter().map(|r| r.line).collect()
    }

    fn unconditional(text: &str) -> Vec<usize> {
        registrations(text).expect("parses").iter().filter(|r| !r.conditional).map(|r| r.line).collect()
    }

    #[test]
    fn finds_one_registration() {
        assert_eq!(lines("use alloc8::Heap;\nalloc8::register!(A = A);\n"), vec![2]);
        assert_eq!(lines("use alloc8::register;\nregister!(A = A::new());\n"), vec![2]);
    }

    #[test]
    fn ignores_comments_and_strings() {
        let text = "// alloc8::register!(A = A);\n/* register!(B = B)\n */\nconst S: &str = \"register!(C)\";\nregister!(D = D);\n";
        assert_eq!(lines(text), vec![5]);
        assert_eq!(lines("const Q: u8 = b'\"';\nregister!(D = D);\n"), vec![2]);
        assert_eq!(lines("/* a /* nested */ register!(X) */\nregister!(D = D);\n"), vec![2]);
    }

    /// The scanner this replaced refused these (issue 27, item 16).
    #[test]
    fn char_literals_and_raw_strings_are_not_strings_left_open() {
        assert_eq!(lines("const Q: char = '\"';\nalloc8::register!(D = D);\n"), vec![2]);
        assert_eq!(lines("const R: &str = r#\"a\"b\"#;\nalloc8::register!(D = D);\n"), vec![2]);
        assert_eq!(lines("const R: &str = r##\"register!(X) \"# \"##;\nalloc8::register!(D = D);\n"), vec![2]);
        assert_eq!(lines("fn f<'a>(x: &'a str) -> char { '\\'' }\nalloc8::register!(D = D);\n"), vec![2]);
    }

    #[test]
    fn registrations_under_cfg_are_conditional() {
        let text = "#[cfg(feature = \"a\")]\nalloc8::register!(A = A);\n#[cfg(not(feature = \"a\"))]\nalloc8::register!(B = B);\n";
        assert_eq!(lines(text), vec![2, 4]);
        assert!(unconditional(text).is_empty());
        let in_mod = "#[cfg(unix)]\nmod imp {\n    alloc8::register!(A = A);\n}\nalloc8::register!(B = B);\n";
        assert_eq!(unconditional(in_mod), vec![5]);
        let cfg_if = "cfg_if::cfg_if! {\n    if #[cfg(unix)] {\n        alloc8::register!(A = A);\n    } else {\n        alloc8::register!(B = B);\n    }\n}\n";
        assert_eq!(lines(cfg_if), vec![3, 5]);
        assert!(unconditional(cfg_if).is_empty());
    }

    #[test]
    fn reports_every_line_of_a_double_registration() {
        assert_eq!(unconditional("alloc8::register!(A = A);\n\nalloc8::register!(B = B);\n"), vec![1, 3]);
    }

    #[test]
    fn does_not_match_longer_identifiers() {
        assert!(lines("my_register!(A);\n").is_empty());
        assert!(lines("alloc8::registered!(A);\n").is_empty());
    }

    #[test]
    fn text_that_is_not_rust_is_left_to_rustc() {
        assert!(registrations("fn (\nalloc8::register!(A = A);\n").is_none());
    }
}
