package decoy

// The words and layouts the built-in page is made of (page.go).

var (
	firstNames = []string{"Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Karin", "Leo", "Maja", "Nils", "Olga", "Paul", "Rosa", "Simon", "Tara", "Viktor", "Wanda", "Yusuf", "Zoe", "Marek", "Lena", "Tomas", "Sofia", "Adrian"}
	lastNames  = []string{"Berger", "Novak", "Lindqvist", "Moreau", "Keller", "Horvat", "Jansen", "Costa", "Fischer", "Kowalski", "Meyer", "Rossi", "Schmidt", "Varga", "Weber", "Dumont", "Larsen", "Petrov", "Silva", "Brandt", "Ortega", "Holm"}
	nameHeads  = []string{"North", "Blue", "Green", "Silver", "Old", "Little", "Red", "Stone", "Cedar", "Harbor", "Maple", "River", "Copper", "Lantern", "Quiet", "Bright", "Oak", "Juniper", "Hill", "Willow"}
	nameTails  = []string{"Studio", "Works", "Labs", "Design", "Media", "Consulting", "Print", "Garden", "Bakery", "Partners", "Digital", "Crafts", "Atelier", "Systems", "Photo", "Books", "Workshop", "Collective"}
	cities     = []string{"Lisbon", "Porto", "Ghent", "Utrecht", "Aarhus", "Tartu", "Brno", "Graz", "Ljubljana", "Bologna", "Lyon", "Leipzig", "Kraków", "Cork", "Bergen", "Tampere", "Valencia", "Basel", "Riga", "Malmö"}
	trades     = []string{"web developer", "photographer", "graphic designer", "translator", "illustrator", "software engineer", "architect", "writer", "sound engineer", "data analyst", "UX designer", "teacher"}
	taglines   = []string{"Small studio, careful work.", "Made by hand since day one.", "Simple things, done well.", "Good work takes time.", "Independent and local.", "Quality over quantity."}
	// paragraphs in the voice of a firm ("we") and of a person ("I")
	weParagraphs = []string{
		"We are a small team that likes to keep things simple. Most of our work comes from people who found us through friends, and we would like to keep it that way.",
		"This site is still being put together. In the meantime, the best way to reach us is by e-mail.",
		"Our office is open on weekdays. Visits are by appointment only, so please write to us first.",
		"We have moved to a new server. Some older pages are no longer available; if you are looking for something in particular, just ask.",
		"Thank you for stopping by. New projects and updates will be posted here from time to time.",
		"We answer every message, usually within two working days.",
		"Prices depend on the size of the job. Write to us with a few details and we will send a quote.",
	}
	iParagraphs = []string{
		"I mostly work with small businesses and non-profits, on projects of every size. Each project starts with a conversation.",
		"Most of what used to be here has moved elsewhere. This page stays up so that old links do not simply break.",
		"I moved this site to a new server recently, so a few old pages are gone. Write to me if you miss one.",
		"When I am not working I am usually outside, or reading. I answer e-mail in the evenings.",
		"I have been doing this for a number of years now, first for an agency and now on my own.",
		"Thanks for stopping by. I post here when there is something worth sharing, which is not often.",
	}
	services   = []string{"Web sites for small businesses", "Photography for events", "Print and packaging", "Consulting and workshops", "Translation (EN, DE, FR)", "Maintenance and hosting", "Logo and brand design", "Technical writing", "Training for teams", "Repairs and restoration"}
	postTitles = []string{"Moving to a new server", "Notes from the spring workshop", "A short update", "What we learned this year", "Back from holidays", "New opening hours", "Some thoughts on simple tools", "Autumn projects", "Hello again"}
	headings   = []string{"Under construction", "Site under construction", "Welcome", "Coming soon", "Maintenance", "Hello"}
	notices    = []string{"This site is being set up. Please check back later.", "Nothing to see here yet.", "This server is up and running; the site itself is not there yet.", "We are working on it. Please come back soon.", "This page is a placeholder."}
	robots     = []string{"User-agent: *\nDisallow:\n", "User-agent: *\nDisallow: /admin/\n", "User-agent: *\nAllow: /\n"}
)

// pageTemplate is a kind of page: its text (a text/template of a page),
// whose voice it is in, and how many paragraphs it takes at most.
type pageTemplate struct {
	text     string
	personal bool
	paras    int
}

// pageTemplates are the kinds of page; {{.CSS}} links style.css.
var pageTemplates = []pageTemplate{
	// a placeholder, as a freshly set-up host shows
	{paras: 1, text: `<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
	<meta charset="utf-8">
	<title>{{.Heading}}</title>
{{- if .CSS}}
	<link rel="stylesheet" href="/style.css">
{{- end}}
</head>
<body>
	<h1>{{.Heading}}</h1>
	<p>{{.Notice}}</p>
{{- range .Paras}}
	<p>{{.}}</p>
{{- end}}
	<p><small>{{.Updated}}</small></p>
</body>
</html>
`},
	// coming soon
	{paras: 3, text: `<!doctype html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Name}} - coming soon</title>
{{- if .CSS}}
<link rel="stylesheet" href="/style.css">
{{- end}}
</head>
<body>
<main>
	<h1>{{.Name}}</h1>
	<p><em>{{.Tagline}}</em></p>
	<p>Our new site is coming soon.</p>
{{- range .Paras}}
	<p>{{.}}</p>
{{- end}}
	<p>Contact: <a href="mailto:hello@{{.Slug}}.{{.TLD}}">hello@{{.Slug}}.{{.TLD}}</a></p>
</main>
</body>
</html>
`},
	// a personal page
	{personal: true, paras: 4, text: `<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
	<meta charset="utf-8">
	<meta name="viewport" content="width=device-width, initial-scale=1">
	<title>{{.Owner}}</title>
{{- if .CSS}}
	<link rel="stylesheet" href="/style.css">
{{- end}}
</head>
<body>
	<header>
		<h1>{{.Owner}}</h1>
		<p>{{.Trade}}, {{.City}}</p>
	</header>
{{- range .Paras}}
	<p>{{.}}</p>
{{- end}}
	<footer>
		<p>Last updated {{.Updated}}.</p>
	</footer>
</body>
</html>
`},
	// a small firm's page
	{paras: 4, text: `<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Name}} | {{.City}}</title>
{{- if .CSS}}
<link rel="stylesheet" href="/style.css">
{{- end}}
</head>
<body>
<header>
	<h1>{{.Name}}</h1>
	<p>{{.Tagline}}</p>
</header>
<section>
	<h2>What we do</h2>
	<ul>
{{- range .Items}}
		<li>{{.}}</li>
{{- end}}
	</ul>
</section>
<section>
	<h2>About</h2>
{{- range .Paras}}
	<p>{{.}}</p>
{{- end}}
</section>
<footer>
	<p>&copy; {{if lt .Since .Year}}{{.Since}}&ndash;{{end}}{{.Year}} {{.Name}}, {{.City}}</p>
</footer>
</body>
</html>
`},
	// a short blog
	{personal: true, paras: 2, text: `<!doctype html>
<html lang="{{.Lang}}">
<head>
	<meta charset="utf-8">
	<title>{{.Owner}}'s notes</title>
{{- if .CSS}}
	<link rel="stylesheet" href="/style.css">
{{- end}}
</head>
<body>
	<h1>{{.Owner}}'s notes</h1>
	<p>I am {{.ATrade}} in {{.City}}, writing here now and then.</p>
	<ul>
{{- range .Posts}}
		<li>{{.Date}} &mdash; {{.Title}}</li>
{{- end}}
	</ul>
{{- range .Paras}}
	<p>{{.}}</p>
{{- end}}
</body>
</html>
`},
}
