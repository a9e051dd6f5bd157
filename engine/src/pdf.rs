//! Business documents as PDF (invoices, statements): A4 pages with a branded header band,
//! key-value blocks and tables whose header row repeats on every page, written with
//! `pdf-writer` and the standard Helvetica fonts (every PDF reader has them, nothing is
//! embedded). Text is encoded as WinAnsi: Latin-1 characters print as themselves, others as `?`.
//! Content streams are left uncompressed, so the text can be searched and tested.

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str, TextStr};

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 48.0;
const BAND_H: f32 = 64.0;
const BODY_SIZE: f32 = 9.5;
const ROW_H: f32 = 15.0;

/// Advance widths of Helvetica (per 1000 units of font size) for ASCII 32..=126, from the
/// font's public metrics. Helvetica-Bold digits and punctuation share these widths; for bold
/// letters this slightly underestimates, which only affects truncation of long labels.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

pub struct Column {
    pub title: &'static str,
    /// Share of the usable page width.
    pub width: f32,
    pub align: Align,
}

impl Column {
    pub const fn left(title: &'static str, width: f32) -> Column {
        Column {
            title,
            width,
            align: Align::Left,
        }
    }
    pub const fn right(title: &'static str, width: f32) -> Column {
        Column {
            title,
            width,
            align: Align::Right,
        }
    }
}

#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
        }
    }
}

/// A document being laid out top to bottom.
pub struct Document {
    title: String,
    brand: String,
    color: (f32, f32, f32),
    subtitle: String,
    pages: Vec<Content>,
    page: Content,
    y: f32,
}

impl Document {
    /// `brand` is the tenant's name, `color` its brand colour (`#rrggbb`; a sober blue if unset
    /// or unreadable).
    pub fn new(title: &str, brand: &str, color: Option<&str>, subtitle: &str) -> Document {
        let mut d = Document {
            title: title.to_string(),
            brand: brand.to_string(),
            color: color.and_then(parse_hex).unwrap_or((0.11, 0.27, 0.53)),
            subtitle: subtitle.to_string(),
            pages: Vec::new(),
            page: Content::new(),
            y: 0.0,
        };
        d.start_page();
        d
    }

    fn start_page(&mut self) {
        let (r, g, b) = self.color;
        let c = &mut self.page;
        c.set_fill_rgb(r, g, b);
        c.rect(0.0, PAGE_H - BAND_H, PAGE_W, BAND_H);
        c.fill_nonzero();
        c.set_fill_rgb(1.0, 1.0, 1.0);
        text(c, Font::Bold, 18.0, MARGIN, PAGE_H - 34.0, &self.brand);
        text(c, Font::Regular, 10.0, MARGIN, PAGE_H - 50.0, &self.title);
        let right = PAGE_W - MARGIN - width(&self.subtitle, 10.0);
        text(c, Font::Regular, 10.0, right, PAGE_H - 50.0, &self.subtitle);
        c.set_fill_rgb(0.0, 0.0, 0.0);
        self.y = PAGE_H - BAND_H - 28.0;
    }

    fn ensure(&mut self, height: f32) -> bool {
        if self.y - height >= MARGIN + 20.0 {
            return false;
        }
        let done = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(done);
        self.start_page();
        true
    }

    pub fn heading(&mut self, s: &str) {
        self.ensure(30.0);
        self.y -= 6.0;
        text(&mut self.page, Font::Bold, 12.0, MARGIN, self.y, s);
        self.y -= 18.0;
    }

    pub fn paragraph(&mut self, s: &str) {
        self.ensure(ROW_H);
        text(&mut self.page, Font::Regular, BODY_SIZE, MARGIN, self.y, s);
        self.y -= ROW_H;
    }

    /// Label: value lines, two columns.
    pub fn fields(&mut self, pairs: &[(&str, String)]) {
        for (label, value) in pairs {
            self.ensure(ROW_H);
            text(&mut self.page, Font::Bold, BODY_SIZE, MARGIN, self.y, label);
            let v = fit(value, BODY_SIZE, PAGE_W - 2.0 * MARGIN - 140.0);
            text(
                &mut self.page,
                Font::Regular,
                BODY_SIZE,
                MARGIN + 140.0,
                self.y,
                &v,
            );
            self.y -= ROW_H;
        }
        self.y -= 6.0;
    }

    /// A table; rows marked `true` are emphasised (totals). The header repeats after a page
    /// break.
    pub fn table(&mut self, cols: &[Column], rows: &[(Vec<String>, bool)]) {
        let usable = PAGE_W - 2.0 * MARGIN;
        let total: f32 = cols.iter().map(|c| c.width).sum();
        let widths: Vec<f32> = cols.iter().map(|c| c.width / total * usable).collect();
        self.ensure(2.0 * ROW_H);
        self.table_header(cols, &widths);
        for (i, (cells, strong)) in rows.iter().enumerate() {
            if self.ensure(ROW_H) {
                self.table_header(cols, &widths);
            }
            if i % 2 == 1 && !strong {
                self.page.set_fill_rgb(0.96, 0.96, 0.97);
                self.page
                    .rect(MARGIN, self.y - 4.0, usable, ROW_H)
                    .fill_nonzero();
                self.page.set_fill_rgb(0.0, 0.0, 0.0);
            }
            if *strong {
                rule(&mut self.page, self.y + ROW_H - 4.0, 0.8);
            }
            let font = if *strong { Font::Bold } else { Font::Regular };
            self.cells(cols, &widths, cells, font);
            self.y -= ROW_H;
        }
        self.y -= 8.0;
    }

    fn table_header(&mut self, cols: &[Column], widths: &[f32]) {
        let titles: Vec<String> = cols.iter().map(|c| c.title.to_string()).collect();
        self.cells(cols, widths, &titles, Font::Bold);
        rule(&mut self.page, self.y - 5.0, 0.8);
        self.y -= ROW_H + 2.0;
    }

    fn cells(&mut self, cols: &[Column], widths: &[f32], cells: &[String], font: Font) {
        let mut x = MARGIN;
        for ((col, w), cell) in cols.iter().zip(widths).zip(cells) {
            let s = fit(cell, BODY_SIZE, w - 6.0);
            let tx = match col.align {
                Align::Left => x,
                Align::Right => x + w - 4.0 - width(&s, BODY_SIZE),
            };
            text(&mut self.page, font, BODY_SIZE, tx, self.y, &s);
            x += w;
        }
    }

    /// Lays out the page footers and writes the file.
    pub fn finish(mut self, generated_at: &str) -> Vec<u8> {
        let last = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(last);
        let count = self.pages.len();
        let mut pdf = Pdf::new();
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let regular = Ref::new(3);
        let bold = Ref::new(4);
        let info = Ref::new(5);
        let first_page = 6;
        let page_ids: Vec<Ref> = (0..count)
            .map(|i| Ref::new(first_page + 2 * i as i32))
            .collect();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids(page_ids.iter().copied())
            .count(count as i32);
        pdf.type1_font(regular)
            .base_font(Name(b"Helvetica"))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
        pdf.type1_font(bold)
            .base_font(Name(b"Helvetica-Bold"))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
        pdf.document_info(info)
            .title(TextStr(&format!("{} - {}", self.brand, self.title)))
            .producer(TextStr("LumireCRM"));
        for (i, mut content) in self.pages.into_iter().enumerate() {
            content.set_fill_rgb(0.4, 0.4, 0.4);
            let footer = format!("Generated {generated_at}  -  page {} of {count}", i + 1);
            text(
                &mut content,
                Font::Regular,
                8.0,
                MARGIN,
                MARGIN - 16.0,
                &footer,
            );
            let page_id = page_ids[i];
            let content_id = Ref::new(page_id.get() + 1);
            let mut page = pdf.page(page_id);
            page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
            page.parent(tree);
            page.contents(content_id);
            let mut res = page.resources();
            let mut fonts = res.fonts();
            fonts.pair(Font::Regular.name(), regular);
            fonts.pair(Font::Bold.name(), bold);
            drop(fonts);
            drop(res);
            drop(page);
            pdf.stream(content_id, &content.finish());
        }
        pdf.finish()
    }
}

fn text(c: &mut Content, font: Font, size: f32, x: f32, y: f32, s: &str) {
    let bytes = win_ansi(s);
    c.begin_text();
    c.set_font(font.name(), size);
    c.next_line(x, y);
    c.show(Str(&bytes));
    c.end_text();
}

fn rule(c: &mut Content, y: f32, w: f32) {
    c.set_stroke_rgb(0.6, 0.6, 0.6);
    c.set_line_width(w);
    c.move_to(MARGIN, y);
    c.line_to(PAGE_W - MARGIN, y);
    c.stroke();
}

/// WinAnsi bytes: Latin-1 characters as themselves (the encodings agree there), others `?`.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c as u32 {
            0x20..=0x7e | 0xa0..=0xff => c as u32 as u8,
            _ => b'?',
        })
        .collect()
}

/// Width of `s` in points at `size`.
pub fn width(s: &str, size: f32) -> f32 {
    let units: u32 = s
        .chars()
        .map(|c| match c as u32 {
            n @ 32..=126 => u32::from(HELVETICA[(n - 32) as usize]),
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

/// `s`, shortened with an ellipsis until it fits `max` points.
fn fit(s: &str, size: f32, max: f32) -> String {
    if width(s, size) <= max {
        return s.to_string();
    }
    let mut out: String = s.to_string();
    while !out.is_empty() && width(&format!("{out}..."), size) > max {
        out.pop();
    }
    format!("{out}...")
}

fn parse_hex(s: &str) -> Option<(f32, f32, f32)> {
    let h = s.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let p = |i: usize| {
        u8::from_str_radix(&h[i..i + 2], 16)
            .ok()
            .map(|v| v as f32 / 255.0)
    };
    Some((p(0)?, p(2)?, p(4)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_multi_page_document_with_repeated_headers() {
        let mut d = Document::new("Statement", "Acme FX", Some("#10b981"), "November 2026");
        d.fields(&[("Client", "Ada Lovelace".into())]);
        let rows: Vec<(Vec<String>, bool)> = (0..120)
            .map(|i| (vec![format!("row {i}"), format!("{i}.00")], false))
            .collect();
        d.table(
            &[Column::left("Item", 3.0), Column::right("Amount", 1.0)],
            &rows,
        );
        let bytes = d.finish("2026-11-23T10:00:00Z");
        let text = String::from_utf8_lossy(&bytes);
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(text.contains("(row 119)"));
        assert!(text.contains("/Count 3"), "120 rows need three pages");
        assert_eq!(text.matches("(Amount)").count(), 3, "header on every page");
        assert!(text.contains("(page 3 of 3)") || text.contains("page 3 of 3"));
    }

    #[test]
    fn widths_truncation_and_encoding() {
        assert_eq!(width("0123456789", 10.0), 55.6);
        assert!(fit(&"x".repeat(500), 10.0, 100.0).ends_with("..."));
        assert!(width(&fit(&"W".repeat(50), 10.0, 100.0), 10.0) <= 100.0);
        assert_eq!(win_ansi("Zoë €"), vec![b'Z', b'o', 0xeb, b' ', b'?']);
        assert_eq!(parse_hex("#ff0000"), Some((1.0, 0.0, 0.0)));
        assert_eq!(parse_hex("red"), None);
    }
}
