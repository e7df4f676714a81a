package config

// DNS lists the variables of `ferry deploy -dns` (package dnsupdate reads
// them, and a test there checks that this list names the same ones), so
// that `ferry help` shows them. Nothing loads it: dnsupdate parses its own.
type DNS struct {
	Server    string `envconfig:"FERRY_DNS_SERVER" form:"HOST[:PORT] of the zone's primary server (port 53 if none)" desc:"-dns rfc2136: the authoritative server that takes the signed dynamic update, and that is asked afterwards whether it has the new records (required)"`
	Transport string `envconfig:"FERRY_DNS_TRANSPORT" default:"tcp" form:"tcp or udp" desc:"-dns rfc2136: how the update and the queries are sent"`
	Zone      string `envconfig:"FERRY_DNS_ZONE" form:"a zone name such as example.com" desc:"-dns: the zone that holds the public host name (default: rfc2136 asks the server for the name's SOA; cloudflare takes the longest suffix of the name that is a zone of the token's account)"`
	TSIG      string `envconfig:"FERRY_DNS_TSIG" form:"NAME:ALGORITHM:BASE64SECRET, ALGORITHM such as hmac-sha256" desc:"-dns rfc2136: the TSIG key that signs the update (or FERRY_DNS_TSIG_FILE; one of them is required)"`
	TSIGFile  string `envconfig:"FERRY_DNS_TSIG_FILE" form:"path of a key file as tsig-keygen writes it" desc:"-dns rfc2136: the TSIG key that signs the update, in BIND's key statement: tsig-keygen -a hmac-sha256 NAME > FILE"`
	CFToken   string `envconfig:"FERRY_DNS_CLOUDFLARE_TOKEN" form:"a Cloudflare API token with the Zone.DNS edit permission" desc:"-dns cloudflare: the API token (default: CLOUDFLARE_API_TOKEN); never printed"`
	CFZoneID  string `envconfig:"FERRY_DNS_CLOUDFLARE_ZONE_ID" form:"a zone ID, 32 hex digits" desc:"-dns cloudflare: the zone's ID, so that the token needs no Zone.Zone read permission to find it by name"`
	CFAPI     string `envconfig:"FERRY_DNS_CLOUDFLARE_API" default:"https://api.cloudflare.com/client/v4/" form:"an http(s):// URL" desc:"-dns cloudflare: the base URL of Cloudflare's v4 API"`
}
