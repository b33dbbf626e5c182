--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: access_requests; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.access_requests (
    id integer NOT NULL,
    owner_id integer NOT NULL,
    requester_id integer NOT NULL,
    resource_id character varying(64) NOT NULL,
    client_pk integer NOT NULL,
    scopes json NOT NULL,
    status character varying(16) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    decided_at timestamp with time zone
);


--
-- Name: access_requests_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.access_requests_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: access_requests_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.access_requests_id_seq OWNED BY public.access_requests.id;


--
-- Name: audit_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_events (
    id integer NOT NULL,
    owner_id integer NOT NULL,
    at timestamp with time zone NOT NULL,
    requester character varying(80),
    client character varying(200),
    resource_id character varying(64),
    resource_name character varying(500),
    scopes json NOT NULL,
    outcome character varying(24) NOT NULL,
    reason text NOT NULL
);


--
-- Name: audit_events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.audit_events_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.audit_events_id_seq OWNED BY public.audit_events.id;


--
-- Name: authorization_codes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.authorization_codes (
    id integer NOT NULL,
    user_id integer NOT NULL,
    code character varying(120) NOT NULL,
    client_id character varying(48),
    redirect_uri text,
    response_type text,
    scope text,
    nonce text,
    auth_time integer NOT NULL,
    acr text,
    amr text,
    code_challenge text,
    code_challenge_method character varying(48)
);


--
-- Name: authorization_codes_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.authorization_codes_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: authorization_codes_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.authorization_codes_id_seq OWNED BY public.authorization_codes.id;


--
-- Name: authz_flow_links; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.authz_flow_links (
    key_digest character varying(64) NOT NULL,
    flow_id character varying(64) NOT NULL,
    recorded_at timestamp with time zone NOT NULL
);


--
-- Name: authz_protocol_messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.authz_protocol_messages (
    id integer NOT NULL,
    flow_id character varying(64) NOT NULL,
    recorded_at timestamp with time zone NOT NULL,
    started double precision NOT NULL,
    finished double precision NOT NULL,
    recorder character varying(16) NOT NULL,
    direction character varying(8) NOT NULL,
    peer character varying(16) NOT NULL,
    method character varying(8) NOT NULL,
    url text NOT NULL,
    status integer,
    request_shown json NOT NULL,
    response_shown json NOT NULL,
    note text
);


--
-- Name: authz_protocol_messages_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.authz_protocol_messages_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: authz_protocol_messages_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.authz_protocol_messages_id_seq OWNED BY public.authz_protocol_messages.id;


--
-- Name: clients; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.clients (
    id integer NOT NULL,
    service_account_id integer,
    client_id character varying(48),
    client_secret character varying(120),
    client_id_issued_at integer NOT NULL,
    client_secret_expires_at integer NOT NULL,
    client_metadata text
);


--
-- Name: clients_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.clients_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: clients_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.clients_id_seq OWNED BY public.clients.id;


--
-- Name: doctor_flow_links; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.doctor_flow_links (
    key_digest character varying(64) NOT NULL,
    flow_id character varying(64) NOT NULL,
    recorded_at timestamp with time zone NOT NULL
);


--
-- Name: doctor_flows; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.doctor_flows (
    id character varying(64) NOT NULL,
    person_id integer NOT NULL,
    title character varying(300) NOT NULL,
    started_at timestamp with time zone NOT NULL
);


--
-- Name: doctor_pending; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.doctor_pending (
    id integer NOT NULL,
    person_id integer NOT NULL,
    kind character varying(16) NOT NULL,
    status character varying(16) NOT NULL,
    method character varying(8) NOT NULL,
    url text NOT NULL,
    body json,
    as_uri character varying(500) NOT NULL,
    ticket text NOT NULL,
    "interval" integer NOT NULL,
    next_poll_at timestamp with time zone NOT NULL,
    state_digest character varying(64),
    message text,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: doctor_pending_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.doctor_pending_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: doctor_pending_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.doctor_pending_id_seq OWNED BY public.doctor_pending.id;


--
-- Name: doctor_people; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.doctor_people (
    id integer NOT NULL,
    sub character varying(255) NOT NULL,
    username character varying(80) NOT NULL,
    name character varying(200) NOT NULL,
    id_token text,
    id_token_expires_at timestamp with time zone
);


--
-- Name: doctor_people_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.doctor_people_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: doctor_people_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.doctor_people_id_seq OWNED BY public.doctor_people.id;


--
-- Name: doctor_protocol_messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.doctor_protocol_messages (
    id integer NOT NULL,
    flow_id character varying(64) NOT NULL,
    recorded_at timestamp with time zone NOT NULL,
    started double precision NOT NULL,
    finished double precision NOT NULL,
    recorder character varying(16) NOT NULL,
    direction character varying(8) NOT NULL,
    peer character varying(16) NOT NULL,
    method character varying(8) NOT NULL,
    url text NOT NULL,
    status integer,
    request_shown json NOT NULL,
    response_shown json NOT NULL,
    note text
);


--
-- Name: doctor_protocol_messages_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.doctor_protocol_messages_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: doctor_protocol_messages_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.doctor_protocol_messages_id_seq OWNED BY public.doctor_protocol_messages.id;


--
-- Name: doctor_settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.doctor_settings (
    name character varying(80) NOT NULL,
    value text NOT NULL
);


--
-- Name: doctor_visits; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.doctor_visits (
    id integer NOT NULL,
    person_id integer NOT NULL,
    url text NOT NULL,
    title character varying(300) NOT NULL,
    outcome character varying(32) NOT NULL,
    at timestamp with time zone NOT NULL
);


--
-- Name: doctor_visits_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.doctor_visits_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: doctor_visits_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.doctor_visits_id_seq OWNED BY public.doctor_visits.id;


--
-- Name: doctor_wallets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.doctor_wallets (
    id integer NOT NULL,
    person_id integer NOT NULL,
    as_uri character varying(500) NOT NULL,
    rpt text,
    rpt_expires_at timestamp with time zone,
    pct text
);


--
-- Name: doctor_wallets_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.doctor_wallets_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: doctor_wallets_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.doctor_wallets_id_seq OWNED BY public.doctor_wallets.id;


--
-- Name: ehr_access_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_access_log (
    id integer NOT NULL,
    at timestamp with time zone NOT NULL,
    patient_id integer NOT NULL,
    resource character varying(128) NOT NULL,
    scope character varying(32) NOT NULL,
    method character varying(8) NOT NULL,
    subject character varying(255),
    client_id character varying(255),
    outcome character varying(32) NOT NULL,
    status integer NOT NULL
);


--
-- Name: ehr_access_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ehr_access_log_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ehr_access_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ehr_access_log_id_seq OWNED BY public.ehr_access_log.id;


--
-- Name: ehr_devices; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_devices (
    id integer NOT NULL,
    device_id character varying(128) NOT NULL,
    patient_id integer NOT NULL,
    kind character varying(32) NOT NULL,
    model character varying(128),
    firmware character varying(64),
    provisioned_at timestamp with time zone NOT NULL,
    announced_at timestamp with time zone,
    retired_at timestamp with time zone,
    uma_resource_id character varying(128)
);


--
-- Name: ehr_devices_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ehr_devices_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ehr_devices_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ehr_devices_id_seq OWNED BY public.ehr_devices.id;


--
-- Name: ehr_entries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_entries (
    id integer NOT NULL,
    record_set_id integer NOT NULL,
    fhir_id character varying(64) NOT NULL,
    resource_type character varying(64) NOT NULL,
    resource json NOT NULL,
    author_sub character varying(255),
    author_name character varying(200),
    client_id character varying(255),
    created_at timestamp with time zone NOT NULL
);


--
-- Name: ehr_entries_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ehr_entries_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ehr_entries_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ehr_entries_id_seq OWNED BY public.ehr_entries.id;


--
-- Name: ehr_flow_links; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_flow_links (
    key_digest character varying(64) NOT NULL,
    flow_id character varying(64) NOT NULL,
    recorded_at timestamp with time zone NOT NULL
);


--
-- Name: ehr_introspection_cache; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_introspection_cache (
    token_digest character varying(64) NOT NULL,
    patient_id integer NOT NULL,
    body json NOT NULL,
    expires_at timestamp with time zone NOT NULL
);


--
-- Name: ehr_patients; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_patients (
    id integer NOT NULL,
    username character varying(80) NOT NULL,
    full_name character varying(200) NOT NULL,
    sub character varying(255),
    lock_version integer NOT NULL
);


--
-- Name: ehr_patients_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ehr_patients_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ehr_patients_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ehr_patients_id_seq OWNED BY public.ehr_patients.id;


--
-- Name: ehr_protection_links; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_protection_links (
    id integer NOT NULL,
    patient_id integer NOT NULL,
    access_token text NOT NULL,
    refresh_token text,
    expires_at timestamp with time zone NOT NULL,
    scope character varying(255) NOT NULL,
    linked_at timestamp with time zone NOT NULL,
    broken_at timestamp with time zone
);


--
-- Name: ehr_protection_links_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ehr_protection_links_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ehr_protection_links_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ehr_protection_links_id_seq OWNED BY public.ehr_protection_links.id;


--
-- Name: ehr_protocol_messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_protocol_messages (
    id integer NOT NULL,
    flow_id character varying(64) NOT NULL,
    recorded_at timestamp with time zone NOT NULL,
    started double precision NOT NULL,
    finished double precision NOT NULL,
    recorder character varying(16) NOT NULL,
    direction character varying(8) NOT NULL,
    peer character varying(16) NOT NULL,
    method character varying(8) NOT NULL,
    url text NOT NULL,
    status integer,
    request_shown json NOT NULL,
    response_shown json NOT NULL,
    note text
);


--
-- Name: ehr_protocol_messages_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ehr_protocol_messages_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ehr_protocol_messages_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ehr_protocol_messages_id_seq OWNED BY public.ehr_protocol_messages.id;


--
-- Name: ehr_readings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_readings (
    id integer NOT NULL,
    device_pk integer NOT NULL,
    seq bigint NOT NULL,
    measured_at timestamp with time zone NOT NULL,
    systolic integer NOT NULL,
    diastolic integer NOT NULL,
    pulse integer NOT NULL,
    received_at timestamp with time zone NOT NULL
);


--
-- Name: ehr_readings_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ehr_readings_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ehr_readings_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ehr_readings_id_seq OWNED BY public.ehr_readings.id;


--
-- Name: ehr_record_sets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_record_sets (
    id integer NOT NULL,
    patient_id integer NOT NULL,
    name character varying(64) NOT NULL,
    uma_resource_id character varying(128),
    created_at timestamp with time zone NOT NULL
);


--
-- Name: ehr_record_sets_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ehr_record_sets_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ehr_record_sets_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ehr_record_sets_id_seq OWNED BY public.ehr_record_sets.id;


--
-- Name: ehr_settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ehr_settings (
    name character varying(80) NOT NULL,
    value text NOT NULL
);


--
-- Name: groups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.groups (
    id integer NOT NULL,
    name character varying(80) NOT NULL
);


--
-- Name: groups_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.groups_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: groups_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.groups_id_seq OWNED BY public.groups.id;


--
-- Name: pcts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.pcts (
    id integer NOT NULL,
    digest character varying(64) NOT NULL,
    client_pk integer NOT NULL,
    requester_id integer NOT NULL,
    issued_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);


--
-- Name: pcts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.pcts_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: pcts_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.pcts_id_seq OWNED BY public.pcts.id;


--
-- Name: permission_tickets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.permission_tickets (
    id integer NOT NULL,
    ticket_digest character varying(64) NOT NULL,
    owner_id integer NOT NULL,
    client_pk integer NOT NULL,
    permissions json NOT NULL,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    requester_id integer,
    bound_client_pk integer,
    claims_gathered boolean NOT NULL,
    previous_id integer
);


--
-- Name: permission_tickets_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.permission_tickets_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: permission_tickets_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.permission_tickets_id_seq OWNED BY public.permission_tickets.id;


--
-- Name: policies; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.policies (
    id integer NOT NULL,
    owner_id integer NOT NULL,
    subject_type character varying(16) NOT NULL,
    subject_user_id integer,
    subject_group_id integer,
    subject_email_domain character varying(255),
    scopes json NOT NULL,
    expires_at timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    from_request_id integer
);


--
-- Name: policies_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.policies_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: policies_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.policies_id_seq OWNED BY public.policies.id;


--
-- Name: policy_resources; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.policy_resources (
    policy_id integer NOT NULL,
    resource_id character varying(64) NOT NULL
);


--
-- Name: resources; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.resources (
    id character varying(64) NOT NULL,
    owner_id integer NOT NULL,
    client_pk integer NOT NULL,
    name character varying(500),
    description text,
    type character varying(500),
    icon_uri character varying(2000),
    scopes json NOT NULL,
    uncovered character varying(8) NOT NULL,
    localized json NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: rpts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rpts (
    id integer NOT NULL,
    digest character varying(64) NOT NULL,
    jti character varying(64) NOT NULL,
    client_pk integer NOT NULL,
    requester_id integer NOT NULL,
    ticket_id integer,
    permissions json NOT NULL,
    issued_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);


--
-- Name: rpts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.rpts_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: rpts_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.rpts_id_seq OWNED BY public.rpts.id;


--
-- Name: settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.settings (
    name character varying(80) NOT NULL,
    value text NOT NULL
);


--
-- Name: signing_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.signing_keys (
    kid character varying(64) NOT NULL,
    private_jwk json NOT NULL,
    created_at timestamp with time zone NOT NULL,
    superseded_at timestamp with time zone
);


--
-- Name: tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tokens (
    id integer NOT NULL,
    user_id integer,
    refresh_token_expires_at integer NOT NULL,
    client_id character varying(48),
    token_type character varying(40),
    access_token character varying(255) NOT NULL,
    refresh_token character varying(255),
    scope text,
    issued_at integer NOT NULL,
    access_token_revoked_at integer NOT NULL,
    refresh_token_revoked_at integer NOT NULL,
    expires_in integer NOT NULL
);


--
-- Name: tokens_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: tokens_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.tokens_id_seq OWNED BY public.tokens.id;


--
-- Name: user_groups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.user_groups (
    user_id integer NOT NULL,
    group_id integer NOT NULL
);


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id integer NOT NULL,
    sub character varying(64) NOT NULL,
    username character varying(80) NOT NULL,
    full_name character varying(200) NOT NULL,
    email character varying(255),
    email_verified boolean NOT NULL,
    password_hash character varying(255),
    is_service_account boolean NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: users_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.users_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: users_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.users_id_seq OWNED BY public.users.id;


--
-- Name: access_requests id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.access_requests ALTER COLUMN id SET DEFAULT nextval('public.access_requests_id_seq'::regclass);


--
-- Name: audit_events id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_events ALTER COLUMN id SET DEFAULT nextval('public.audit_events_id_seq'::regclass);


--
-- Name: authorization_codes id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.authorization_codes ALTER COLUMN id SET DEFAULT nextval('public.authorization_codes_id_seq'::regclass);


--
-- Name: authz_protocol_messages id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.authz_protocol_messages ALTER COLUMN id SET DEFAULT nextval('public.authz_protocol_messages_id_seq'::regclass);


--
-- Name: clients id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.clients ALTER COLUMN id SET DEFAULT nextval('public.clients_id_seq'::regclass);


--
-- Name: doctor_pending id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_pending ALTER COLUMN id SET DEFAULT nextval('public.doctor_pending_id_seq'::regclass);


--
-- Name: doctor_people id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_people ALTER COLUMN id SET DEFAULT nextval('public.doctor_people_id_seq'::regclass);


--
-- Name: doctor_protocol_messages id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_protocol_messages ALTER COLUMN id SET DEFAULT nextval('public.doctor_protocol_messages_id_seq'::regclass);


--
-- Name: doctor_visits id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_visits ALTER COLUMN id SET DEFAULT nextval('public.doctor_visits_id_seq'::regclass);


--
-- Name: doctor_wallets id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_wallets ALTER COLUMN id SET DEFAULT nextval('public.doctor_wallets_id_seq'::regclass);


--
-- Name: ehr_access_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_access_log ALTER COLUMN id SET DEFAULT nextval('public.ehr_access_log_id_seq'::regclass);


--
-- Name: ehr_devices id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_devices ALTER COLUMN id SET DEFAULT nextval('public.ehr_devices_id_seq'::regclass);


--
-- Name: ehr_entries id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_entries ALTER COLUMN id SET DEFAULT nextval('public.ehr_entries_id_seq'::regclass);


--
-- Name: ehr_patients id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_patients ALTER COLUMN id SET DEFAULT nextval('public.ehr_patients_id_seq'::regclass);


--
-- Name: ehr_protection_links id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_protection_links ALTER COLUMN id SET DEFAULT nextval('public.ehr_protection_links_id_seq'::regclass);


--
-- Name: ehr_protocol_messages id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_protocol_messages ALTER COLUMN id SET DEFAULT nextval('public.ehr_protocol_messages_id_seq'::regclass);


--
-- Name: ehr_readings id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_readings ALTER COLUMN id SET DEFAULT nextval('public.ehr_readings_id_seq'::regclass);


--
-- Name: ehr_record_sets id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_record_sets ALTER COLUMN id SET DEFAULT nextval('public.ehr_record_sets_id_seq'::regclass);


--
-- Name: groups id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.groups ALTER COLUMN id SET DEFAULT nextval('public.groups_id_seq'::regclass);


--
-- Name: pcts id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pcts ALTER COLUMN id SET DEFAULT nextval('public.pcts_id_seq'::regclass);


--
-- Name: permission_tickets id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.permission_tickets ALTER COLUMN id SET DEFAULT nextval('public.permission_tickets_id_seq'::regclass);


--
-- Name: policies id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies ALTER COLUMN id SET DEFAULT nextval('public.policies_id_seq'::regclass);


--
-- Name: rpts id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rpts ALTER COLUMN id SET DEFAULT nextval('public.rpts_id_seq'::regclass);


--
-- Name: tokens id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens ALTER COLUMN id SET DEFAULT nextval('public.tokens_id_seq'::regclass);


--
-- Name: users id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval('public.users_id_seq'::regclass);


--
-- Data for Name: access_requests; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.access_requests VALUES (1, 1, 6, 'hpUF4-5oXkR5TWRK', 2, '["read"]', 'pending', '2026-12-02 17:34:15.719141+00', NULL);


--
-- Data for Name: audit_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.audit_events VALUES (1, 1, '2026-12-02 17:34:15.670926+00', NULL, 'Doctor app', 'hpUF4-5oXkR5TWRK', 'Alice''s labs', '["read"]', 'need_info', 'no claims were presented');
INSERT INTO public.audit_events VALUES (2, 1, '2026-12-02 17:34:15.716951+00', 'mallory', 'Doctor app', 'hpUF4-5oXkR5TWRK', 'Alice''s labs', '["read"]', 'pending', 'no policy covers it; the owner has been asked');


--
-- Data for Name: authorization_codes; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: authz_flow_links; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: authz_protocol_messages; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: clients; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.clients VALUES (1, NULL, 'ehr', '14924bb16a191f8c35623e3ab188c21f45a0e6b4e36efd3824339df0b42fdbb6', 0, 0, '{"client_name":"Alice''s EHR","redirect_uris":["http://localhost:8401/auth/callback","http://localhost:8401/protect/callback"],"grant_types":["authorization_code","refresh_token","client_credentials"],"response_types":["code"],"scope":"openid profile email uma_protection","token_endpoint_auth_method":"client_secret_basic"}');
INSERT INTO public.clients VALUES (2, NULL, 'doctor-app', 'f38a0710c8b2e147414e8de8e970c884ef2195260e9d636fd5cefc9091c199fc', 0, 0, '{"client_name":"Doctor app","redirect_uris":["http://localhost:8402/auth/callback"],"claims_redirect_uris":["http://localhost:8402/uma/claims-callback"],"grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:uma-ticket"],"response_types":["code"],"scope":"openid profile email","token_endpoint_auth_method":"client_secret_basic"}');


--
-- Data for Name: doctor_flow_links; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: doctor_flows; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: doctor_pending; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: doctor_people; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.doctor_people VALUES (1, 'carol-sub', 'carol', 'Carol Physician', NULL, NULL);


--
-- Data for Name: doctor_protocol_messages; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: doctor_settings; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: doctor_visits; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.doctor_visits VALUES (1, 1, 'http://localhost:8401/api/patients/alice/records/history', 'Medical history', 'granted', '2026-12-02 17:34:15.98036+00');


--
-- Data for Name: doctor_wallets; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: ehr_access_log; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ehr_access_log VALUES (1, '2026-12-02 17:34:15.886834+00', 1, 'history', 'read', 'GET', 'carol-sub', 'doctor-app', 'granted', 200);


--
-- Data for Name: ehr_devices; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ehr_devices VALUES (1, 'bp-monitor-001', 1, 'blood_pressure', NULL, NULL, '2026-12-02 17:34:15.873272+00', '2026-12-02 17:34:15.723612+00', NULL, NULL);


--
-- Data for Name: ehr_entries; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ehr_entries VALUES (1, 1, 'alice-hist-1', 'Condition', '{"resourceType": "Condition", "id": "hist-1", "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active", "display": "Active"}], "text": "Active"}, "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed", "display": "Confirmed"}], "text": "Confirmed"}, "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item", "display": "Problem List Item"}], "text": "Problem List Item"}], "code": {"coding": [{"system": "http://snomed.info/sct", "code": "59621000", "display": "Essential hypertension"}, {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10", "display": "Essential (primary) hypertension"}], "text": "Essential hypertension"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "recordedDate": "2026-01-14", "asserter": {"display": "Dr. Carol (regular physician)"}, "note": [{"text": "Home readings around 145/92 mm[Hg]; lisinopril started."}]}', NULL, NULL, NULL, '2026-12-02 17:34:15.860764+00');
INSERT INTO public.ehr_entries VALUES (2, 1, 'alice-hist-2', 'Condition', '{"resourceType": "Condition", "id": "hist-2", "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active", "display": "Active"}], "text": "Active"}, "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed", "display": "Confirmed"}], "text": "Confirmed"}, "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item", "display": "Problem List Item"}], "text": "Problem List Item"}], "code": {"coding": [{"system": "http://snomed.info/sct", "code": "239873007", "display": "Osteoarthritis of knee"}, {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M17.11", "display": "Unilateral primary osteoarthritis, right knee"}], "text": "Primary osteoarthritis of the right knee"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "recordedDate": "2026-02-20", "asserter": {"display": "Dr. Carol (regular physician)"}, "note": [{"text": "X-ray: severe medial joint-space narrowing and osteophytes (Kellgren-Lawrence 4)."}]}', NULL, NULL, NULL, '2026-12-02 17:34:15.860768+00');
INSERT INTO public.ehr_entries VALUES (3, 1, 'alice-hist-3', 'Procedure', '{"resourceType": "Procedure", "id": "hist-3", "status": "completed", "code": {"text": "Intra-articular corticosteroid injection, right knee"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "performedDateTime": "2026-03-18", "performer": [{"actor": {"display": "Dr. Carol (regular physician)"}}], "reasonReference": [{"reference": "Condition/hist-2", "display": "Osteoarthritis"}], "bodySite": [{"text": "Right knee"}], "outcome": {"text": "Relief for about six weeks, then pain returned."}}', NULL, NULL, NULL, '2026-12-02 17:34:15.860768+00');
INSERT INTO public.ehr_entries VALUES (4, 1, 'alice-hist-4', 'DocumentReference', '{"resourceType": "DocumentReference", "id": "hist-4", "status": "current", "docStatus": "final", "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}], "text": "Progress note"}, "category": [{"text": "Clinical note"}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "date": "2026-06-10T10:30:00Z", "author": [{"display": "Dr. Carol (regular physician)"}], "description": "BP 132/84 on lisinopril 10 mg, well tolerated. Right knee pain now limits walking to 200 m despite the March injection, meloxicam and physiotherapy. Referred to Dr. Bob at the Surgery Center to discuss total knee replacement.", "content": [{"attachment": {"contentType": "text/plain", "title": "Follow-up: hypertension and right knee pain"}}], "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>BP 132/84 on lisinopril 10 mg, well tolerated. Right knee pain now limits walking to 200 m despite the March injection, meloxicam and physiotherapy. Referred to Dr. Bob at the Surgery Center to discuss total knee replacement.</p></div>"}}', NULL, NULL, NULL, '2026-12-02 17:34:15.860769+00');
INSERT INTO public.ehr_entries VALUES (5, 1, 'alice-hist-5', 'DocumentReference', '{"resourceType": "DocumentReference", "id": "hist-5", "status": "current", "docStatus": "final", "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}], "text": "Consult note"}, "category": [{"text": "Clinical note"}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "date": "2026-11-09T15:00:00Z", "author": [{"display": "Dr. Carol (regular physician)"}], "description": "Fit for elective right total knee arthroplasty with Dr. Bob. BP controlled (128/80). Mild anaemia (Hb 11.8 g/dL) and fasting glucose 104 mg/dL: no action needed before surgery. Meloxicam stopped 7 days before surgery; continue lisinopril, omit the morning dose on the day of surgery. Please monitor BP at home after discharge.", "content": [{"attachment": {"contentType": "text/plain", "title": "Pre-operative assessment for right total knee replacement"}}], "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Fit for elective right total knee arthroplasty with Dr. Bob. BP controlled (128/80). Mild anaemia (Hb 11.8 g/dL) and fasting glucose 104 mg/dL: no action needed before surgery. Meloxicam stopped 7 days before surgery; continue lisinopril, omit the morning dose on the day of surgery. Please monitor BP at home after discharge.</p></div>"}}', NULL, NULL, NULL, '2026-12-02 17:34:15.860769+00');
INSERT INTO public.ehr_entries VALUES (6, 2, 'alice-lab-1', 'DiagnosticReport', '{"resourceType": "DiagnosticReport", "id": "lab-1", "contained": [{"resourceType": "Observation", "id": "cbc-1", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2", "display": "Leukocytes [#/volume] in Blood"}], "text": "Leukocytes [#/volume] in Blood"}, "valueQuantity": {"value": 6.8, "unit": "10*3/uL", "system": "http://unitsofmeasure.org", "code": "10*3/uL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"low": {"value": 4.5, "unit": "10*3/uL", "system": "http://unitsofmeasure.org", "code": "10*3/uL"}, "high": {"value": 11.0, "unit": "10*3/uL", "system": "http://unitsofmeasure.org", "code": "10*3/uL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}, {"resourceType": "Observation", "id": "cbc-2", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin [Mass/volume] in Blood"}], "text": "Hemoglobin [Mass/volume] in Blood"}, "valueQuantity": {"value": 11.8, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "L", "display": "Low"}], "text": "Low"}], "referenceRange": [{"low": {"value": 12.0, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"}, "high": {"value": 15.5, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}, {"resourceType": "Observation", "id": "cbc-3", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "4544-3", "display": "Hematocrit [Volume Fraction] of Blood"}], "text": "Hematocrit [Volume Fraction] of Blood"}, "valueQuantity": {"value": 36.1, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"low": {"value": 36.0, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}, "high": {"value": 46.0, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}, {"resourceType": "Observation", "id": "cbc-4", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "777-3", "display": "Platelets [#/volume] in Blood"}], "text": "Platelets [#/volume] in Blood"}, "valueQuantity": {"value": 245, "unit": "10*3/uL", "system": "http://unitsofmeasure.org", "code": "10*3/uL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"low": {"value": 150, "unit": "10*3/uL", "system": "http://unitsofmeasure.org", "code": "10*3/uL"}, "high": {"value": 400, "unit": "10*3/uL", "system": "http://unitsofmeasure.org", "code": "10*3/uL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}], "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "HM", "display": "Hematology"}], "text": "Hematology"}], "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2", "display": "CBC panel - Blood by Automated count"}], "text": "CBC panel - Blood by Automated count"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z", "issued": "2026-11-05T11:42:00Z", "performer": [{"display": "Surgery Center Laboratory"}], "result": [{"reference": "#cbc-1", "display": "Leukocytes [#/volume] in Blood"}, {"reference": "#cbc-2", "display": "Hemoglobin [Mass/volume] in Blood"}, {"reference": "#cbc-3", "display": "Hematocrit [Volume Fraction] of Blood"}, {"reference": "#cbc-4", "display": "Platelets [#/volume] in Blood"}], "conclusion": "Mild anaemia (Hb 11.8 g/dL); otherwise normal. Acceptable for surgery."}', NULL, NULL, NULL, '2026-12-02 17:34:15.863883+00');
INSERT INTO public.ehr_entries VALUES (7, 2, 'alice-lab-2', 'DiagnosticReport', '{"resourceType": "DiagnosticReport", "id": "lab-2", "contained": [{"resourceType": "Observation", "id": "bmp-1", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma"}], "text": "Glucose [Mass/volume] in Serum or Plasma"}, "valueQuantity": {"value": 104, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H", "display": "High"}], "text": "High"}], "referenceRange": [{"low": {"value": 70, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "high": {"value": 99, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}, {"resourceType": "Observation", "id": "bmp-2", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "2951-2", "display": "Sodium [Moles/volume] in Serum or Plasma"}], "text": "Sodium [Moles/volume] in Serum or Plasma"}, "valueQuantity": {"value": 139, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"low": {"value": 136, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}, "high": {"value": 145, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}, {"resourceType": "Observation", "id": "bmp-3", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium [Moles/volume] in Serum or Plasma"}], "text": "Potassium [Moles/volume] in Serum or Plasma"}, "valueQuantity": {"value": 4.6, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"low": {"value": 3.5, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}, "high": {"value": 5.1, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}, {"resourceType": "Observation", "id": "bmp-4", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "3094-0", "display": "Urea nitrogen [Mass/volume] in Serum or Plasma"}], "text": "Urea nitrogen [Mass/volume] in Serum or Plasma"}, "valueQuantity": {"value": 16, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"low": {"value": 7, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "high": {"value": 20, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}, {"resourceType": "Observation", "id": "bmp-5", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0", "display": "Creatinine [Mass/volume] in Serum or Plasma"}], "text": "Creatinine [Mass/volume] in Serum or Plasma"}, "valueQuantity": {"value": 0.9, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"low": {"value": 0.59, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "high": {"value": 1.04, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z"}], "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "CH", "display": "Chemistry"}], "text": "Chemistry"}], "code": {"coding": [{"system": "http://loinc.org", "code": "51990-0", "display": "Basic metabolic panel - Blood"}], "text": "Basic metabolic panel - Blood"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-11-05T08:10:00Z", "issued": "2026-11-05T12:05:00Z", "performer": [{"display": "Surgery Center Laboratory"}], "result": [{"reference": "#bmp-1", "display": "Glucose [Mass/volume] in Serum or Plasma"}, {"reference": "#bmp-2", "display": "Sodium [Moles/volume] in Serum or Plasma"}, {"reference": "#bmp-3", "display": "Potassium [Moles/volume] in Serum or Plasma"}, {"reference": "#bmp-4", "display": "Urea nitrogen [Mass/volume] in Serum or Plasma"}, {"reference": "#bmp-5", "display": "Creatinine [Mass/volume] in Serum or Plasma"}], "conclusion": "Fasting glucose mildly raised; electrolytes and renal function normal."}', NULL, NULL, NULL, '2026-12-02 17:34:15.863885+00');
INSERT INTO public.ehr_entries VALUES (8, 2, 'alice-lab-3', 'DiagnosticReport', '{"resourceType": "DiagnosticReport", "id": "lab-3", "contained": [{"resourceType": "Observation", "id": "lip-1", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3", "display": "Cholesterol [Mass/volume] in Serum or Plasma"}], "text": "Cholesterol [Mass/volume] in Serum or Plasma"}, "valueQuantity": {"value": 212, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H", "display": "High"}], "text": "High"}], "referenceRange": [{"high": {"value": 199, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-06-08T07:45:00Z"}, {"resourceType": "Observation", "id": "lip-2", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "2571-8", "display": "Triglyceride [Mass/volume] in Serum or Plasma"}], "text": "Triglyceride [Mass/volume] in Serum or Plasma"}, "valueQuantity": {"value": 138, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"high": {"value": 149, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-06-08T07:45:00Z"}, {"resourceType": "Observation", "id": "lip-3", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "2085-9", "display": "Cholesterol in HDL [Mass/volume] in Serum or Plasma"}], "text": "Cholesterol in HDL [Mass/volume] in Serum or Plasma"}, "valueQuantity": {"value": 54, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}], "text": "Normal"}], "referenceRange": [{"low": {"value": 40, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-06-08T07:45:00Z"}, {"resourceType": "Observation", "id": "lip-4", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}], "code": {"coding": [{"system": "http://loinc.org", "code": "13457-7", "display": "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation"}], "text": "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation"}, "valueQuantity": {"value": 130, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}, "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H", "display": "High"}], "text": "High"}], "referenceRange": [{"high": {"value": 129, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}], "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-06-08T07:45:00Z"}], "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "CH", "display": "Chemistry"}], "text": "Chemistry"}], "code": {"coding": [{"system": "http://loinc.org", "code": "24331-1", "display": "Lipid panel - Serum or Plasma"}], "text": "Lipid panel - Serum or Plasma"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "effectiveDateTime": "2026-06-08T07:45:00Z", "issued": "2026-06-08T13:20:00Z", "performer": [{"display": "Clinic Laboratory"}], "result": [{"reference": "#lip-1", "display": "Cholesterol [Mass/volume] in Serum or Plasma"}, {"reference": "#lip-2", "display": "Triglyceride [Mass/volume] in Serum or Plasma"}, {"reference": "#lip-3", "display": "Cholesterol in HDL [Mass/volume] in Serum or Plasma"}, {"reference": "#lip-4", "display": "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation"}], "conclusion": "Borderline high total and LDL cholesterol; diet advice given, recheck in 6 months."}', NULL, NULL, NULL, '2026-12-02 17:34:15.863886+00');
INSERT INTO public.ehr_entries VALUES (9, 3, 'alice-rx-1', 'MedicationRequest', '{"resourceType": "MedicationRequest", "id": "rx-1", "status": "active", "intent": "order", "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "314076", "display": "lisinopril 10 MG Oral Tablet"}], "text": "lisinopril 10 MG Oral Tablet"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "authoredOn": "2026-01-14", "requester": {"display": "Dr. Carol (regular physician)"}, "reasonCode": [{"text": "Essential hypertension"}], "dosageInstruction": [{"text": "Take 1 tablet (10 mg) by mouth once daily in the morning."}]}', NULL, NULL, NULL, '2026-12-02 17:34:15.868676+00');
INSERT INTO public.ehr_entries VALUES (10, 3, 'alice-rx-2', 'MedicationRequest', '{"resourceType": "MedicationRequest", "id": "rx-2", "status": "active", "intent": "order", "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "198440", "display": "acetaminophen 500 MG Oral Tablet"}], "text": "acetaminophen 500 MG Oral Tablet"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "authoredOn": "2026-03-18", "requester": {"display": "Dr. Carol (regular physician)"}, "reasonCode": [{"text": "Osteoarthritis of the right knee"}], "dosageInstruction": [{"text": "Take 1-2 tablets (500-1000 mg) every 6 hours as needed for knee pain; no more than 3 g a day."}]}', NULL, NULL, NULL, '2026-12-02 17:34:15.868679+00');
INSERT INTO public.ehr_entries VALUES (11, 3, 'alice-rx-3', 'MedicationRequest', '{"resourceType": "MedicationRequest", "id": "rx-3", "status": "completed", "intent": "order", "medicationCodeableConcept": {"text": "Meloxicam 15 mg oral tablet"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "authoredOn": "2026-04-22", "requester": {"display": "Dr. Carol (regular physician)"}, "reasonCode": [{"text": "Osteoarthritis of the right knee"}], "dosageInstruction": [{"text": "Take 1 tablet (15 mg) by mouth once daily with food. Stop 7 days before surgery."}]}', NULL, NULL, NULL, '2026-12-02 17:34:15.86868+00');
INSERT INTO public.ehr_entries VALUES (12, 3, 'alice-rx-4', 'MedicationRequest', '{"resourceType": "MedicationRequest", "id": "rx-4", "status": "active", "intent": "order", "medicationCodeableConcept": {"text": "Chlorhexidine gluconate 4% skin cleanser"}, "subject": {"reference": "Patient/alice", "display": "Alice Patient"}, "authoredOn": "2026-11-12", "requester": {"display": "Dr. Bob (surgeon, Surgery Center)"}, "reasonCode": [{"text": "Pre-operative skin preparation for right total knee replacement"}], "dosageInstruction": [{"text": "Wash from the neck down the evening before and the morning of surgery; do not use on the face."}]}', NULL, NULL, NULL, '2026-12-02 17:34:15.86868+00');


--
-- Data for Name: ehr_flow_links; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: ehr_introspection_cache; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: ehr_patients; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ehr_patients VALUES (1, 'alice', 'Alice Patient', NULL, 0);


--
-- Data for Name: ehr_protection_links; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ehr_protection_links VALUES (1, 1, 'eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJSUzI1NiIsImtpZCI6Ik1pT0o5VVZUcW5teDd6WEUifQ.eyJpc3MiOiJodHRwOi8vbG9jYWxob3N0IiwiZXhwIjoxNzk2MjMzNzU1LCJjbGllbnRfaWQiOiJlaHIiLCJpYXQiOjE3OTYyMzI4NTUsImp0aSI6Iml4bzhEZ3dpdUhqWWhNeEkiLCJzY29wZSI6Im9wZW5pZCB1bWFfcHJvdGVjdGlvbiIsInN1YiI6IjEiLCJhdWQiOiJlaHIifQ.B4YfsXAjqSnZXJnytq-6x72LtzRzqwX6_MxFHw4wE33yWBjogUO7zMGGChChNQzn2XVD9KqHgMY-Qxx4BAgZQEGTz-U_OiTvHPssaMYaYPRrQ1MgcP9Alsw6TOuS2XP9tSFhHkY1kWzqMIHcWc3_N8ZuGABJze3IrJlGSYpID1NAtC4nGhtneK_ii_X5MeJxu_YUav_uNussYWzSZSGaMwiHpo1scUgnmSyzR-enUaLrh1gPJ-LyTStG9EqQS-Jur0DoEUWhKvKQt4m7IuEqcBJyrZmbV5XnjAlvDH5rBPDFKKH4Wl9B3HFGQae_L5FUyKnF32rjmuTxM4c5a2tNXQ', 'refresh', '2026-12-02 17:49:15.723612+00', 'openid uma_protection', '2026-12-02 17:34:15.888251+00', NULL);


--
-- Data for Name: ehr_protocol_messages; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: ehr_readings; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ehr_readings VALUES (1, 1, 1, '2026-12-02 17:25:15.723612+00', 121, 80, 70, '2026-12-02 17:34:15.878873+00');
INSERT INTO public.ehr_readings VALUES (2, 1, 2, '2026-12-02 17:26:15.723612+00', 122, 80, 70, '2026-12-02 17:34:15.878879+00');
INSERT INTO public.ehr_readings VALUES (3, 1, 3, '2026-12-02 17:27:15.723612+00', 123, 80, 70, '2026-12-02 17:34:15.878881+00');
INSERT INTO public.ehr_readings VALUES (4, 1, 4, '2026-12-02 17:28:15.723612+00', 124, 80, 70, '2026-12-02 17:34:15.878882+00');
INSERT INTO public.ehr_readings VALUES (5, 1, 5, '2026-12-02 17:29:15.723612+00', 125, 80, 70, '2026-12-02 17:34:15.878883+00');


--
-- Data for Name: ehr_record_sets; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ehr_record_sets VALUES (1, 1, 'history', NULL, '2026-12-02 17:34:15.858083+00');
INSERT INTO public.ehr_record_sets VALUES (2, 1, 'labs', NULL, '2026-12-02 17:34:15.862972+00');
INSERT INTO public.ehr_record_sets VALUES (3, 1, 'prescriptions', NULL, '2026-12-02 17:34:15.865603+00');


--
-- Data for Name: ehr_settings; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: groups; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.groups VALUES (1, 'surgery-center');


--
-- Data for Name: pcts; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: permission_tickets; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.permission_tickets VALUES (2, '10a748a9d6d0addcbc903e493de02d45ffa8baa173d18e2755ed383e702aa36c', 1, 1, '[{"resource_id": "hpUF4-5oXkR5TWRK", "resource_scopes": ["read"]}]', '2026-12-02 17:34:15.670959+00', '2026-12-02 17:39:15.670959+00', NULL, NULL, NULL, false, 1);
INSERT INTO public.permission_tickets VALUES (1, '2b339ef628a19ee6761b2ae732a6a03093728245e20251a0c26d35345539916a', 1, 1, '[{"resource_id": "hpUF4-5oXkR5TWRK", "resource_scopes": ["read"]}]', '2026-12-02 17:34:15.660335+00', '2026-12-02 17:39:15.660335+00', '2026-12-02 17:34:15.672516+00', NULL, NULL, false, NULL);
INSERT INTO public.permission_tickets VALUES (4, 'a049f69afc666550cf16721a78ec15835325ec50c9d896d0f8949e5d9f3db851', 1, 1, '[{"resource_id": "hpUF4-5oXkR5TWRK", "resource_scopes": ["read"]}]', '2026-12-02 17:34:15.716983+00', '2026-12-02 17:39:15.716983+00', NULL, 6, 2, false, 3);
INSERT INTO public.permission_tickets VALUES (3, 'dcce4be38fd635188dcfea07150898da67700b6640e3ae629241f7f85ca7953f', 1, 1, '[{"resource_id": "hpUF4-5oXkR5TWRK", "resource_scopes": ["read"]}]', '2026-12-02 17:34:15.67746+00', '2026-12-02 17:39:15.67746+00', '2026-12-02 17:34:15.717726+00', NULL, NULL, false, NULL);


--
-- Data for Name: policies; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.policies VALUES (1, 1, 'user', 3, NULL, NULL, '["read"]', NULL, '2026-12-02 17:34:15.630337+00', NULL, NULL);


--
-- Data for Name: policy_resources; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.policy_resources VALUES (1, 'z1Zg3oKqxI-yiRGE');


--
-- Data for Name: resources; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.resources VALUES ('z1Zg3oKqxI-yiRGE', 1, 1, 'Alice''s history', NULL, 'urn:uma-health:history', 'http://localhost:8401/static/icons/history.svg', '["read", "write"]', 'ask', '{}', '2026-12-02 17:34:15.607886+00', '2026-12-02 17:34:15.60789+00');
INSERT INTO public.resources VALUES ('hpUF4-5oXkR5TWRK', 1, 1, 'Alice''s labs', NULL, 'urn:uma-health:labs', 'http://localhost:8401/static/icons/history.svg', '["read", "write"]', 'ask', '{}', '2026-12-02 17:34:15.61109+00', '2026-12-02 17:34:15.611092+00');
INSERT INTO public.resources VALUES ('4oZePChJUr4eh_-J', 1, 1, 'Alice''s prescriptions', NULL, 'urn:uma-health:prescriptions', 'http://localhost:8401/static/icons/history.svg', '["read", "write"]', 'ask', '{}', '2026-12-02 17:34:15.613329+00', '2026-12-02 17:34:15.613331+00');


--
-- Data for Name: rpts; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: settings; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.settings VALUES ('first_signing_key', 'MiOJ9UVTqnmx7zXE');


--
-- Data for Name: signing_keys; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.signing_keys VALUES ('MiOJ9UVTqnmx7zXE', '{"n": "6hojOl7k3ghZruSV8JqtL5cRnvphnxWp7dqwq2oLJ0VpK6Vs0LJO63jRxH3mv-FeODWoqYNz4nnI2ia-_IhK6RxM1f-ySe9LDish0qWUC6jxdfpHCt_631ZqhkiUf1VPRaGahpFb09p4wj-NSVqP7ToPAtcH0MAuWVNs9HKLRvEXj1WCkKVR0b7ACVTgQEi7lqFHCdrEbfXuS9oTQEBz8B2tp1QglFo1cnKEBvSaAqUwCc_A2GwXWbWDI6_mX58MRl9EFVW3-KC53CTecq1hk3V2CvV-JpdB4gALnDdu3w3jJetKAGAXY_p2E68CreEHKwyph_XwtH9mPQdbZ-fEdw", "e": "AQAB", "d": "CTKztaRq26p6U5vZpFV_foIyCAwQb967CYRxMpr9CzL3-eYLC3wmC6x4mX7U5S8ms5CwKtDmabydPq0NDgEQ6G3bOwFL8Qm86jaZopws3_RoYFlQF0ZLpiDQGKybYRFqBvNdjfICKKXJ3t_-XiZ3xztjwZnPTc1vRMU5X7VscYIOTJIoKjMRR1VKfDFLqivZevn4sYxl-SkqCLcurlpP_ELh4FengDnnXJoiZZZs4CKceb42xkkjbUffvors7XQ6eQA9Rfqz7FjhrvcX-3tPPEBwmStSZQlAzEVD8dPlsOk8wwl3hT-9kZkrjoMg3fiFZazqtBUcCCoHtVp7lX6LOQ", "p": "-HOK_sXE7pxh-ezTfkm1MwM5r1_5RYqn0xXAJPni5mdYOyHrPIa4xvshG0NXdZv186JPZtpBNrz_luzve6B-1rGF9EHGrE7Y55jqiwDwqvUM9r0NHwphQvMdpTXyvjQlMRxelt2H-zUz2PBJFcM10qYVU3F94fVvttbjx0B8T_U", "q": "8Tb8ctsoauxVVeudImOWDbaNs78_GFU5TwURJIDsSGHQEkM-jfg3MfhQBHrCLcpAn30BpGgnuX_Zgv0fUFz8Ojsz9ArWVmuQisvy8w0yc6evsfJaJgJMSCbZoT7Qt77MsTb17WxJqbgyXfC5_rPZ5RC3RhTlmrLtGbzP4Bx4mzs", "dp": "btdtbVhiEWnnNA76E99iXY3U0G7q0KGZWczcWiK5nb0BWfA5-FjKWsty66zRegDIa5dAAUzhxz_ubzDpbqgdrj6o2l31-q16i2hnSvhyZnLJA9M35V9GIQ5BbZFx6HVvGkfj0z6mCeakaOZaVMEwY_gAj6eUV5id7F5WZHBahXk", "dq": "BfsgDVUDzornnsbF0al4egSRxOg0D01lq2DryOTtdun998X1Eh4aeEG48jN9BxehvJKj7MisW3whD49pLFvx4RvAsQdnwyLNpbNi5cXo_1ckExx4QcMC0zMraEUfdb7kYmyDcoyh0vR_QzcJ1ZfuCjD86l7wRoKzQFUfLmZmUys", "qi": "VJf7asZtPFep-G6dQStm1aVFCifDvtVUZyuPrArJ6kuxNE8586DlExLpTyozqdGpVsQWi6WxDeXXA8fnFyIBhKjnr_PPUTjEuUAyLn12laNBZXJAn3u2JWQVQ8489IUwqFsq5jpK2qzOb3T5NEmmJoz4tJkNtd5z-RwFVAyaR84", "kid": "MiOJ9UVTqnmx7zXE", "use": "sig", "alg": "RS256", "kty": "RSA"}', '2026-12-02 17:34:15.42095+00', NULL);


--
-- Data for Name: tokens; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.tokens VALUES (1, 1, 1798824855, 'ehr', 'Bearer', '9ef31b8e3d1885e3eb0ec0ded1fc2361a025049eefe1559c51052a95511f11ce', 'a12f2782426b1a4742fb826251cbfcab594a9c2ac3ccb51d0308ed0c4865b282', 'openid uma_protection', 1796232855, 0, 0, 900);
INSERT INTO public.tokens VALUES (2, 6, 1798824855, 'doctor-app', 'Bearer', 'd32c9cd4573db3d7e3bafde794cd0145e75e6e2362155fa062f8e1a57204ecd4', '4f552af07678f0b9a0cde60ff1fc9f82dcc14a6870cb9f33bb4867ec412cec8e', 'openid email', 1796232855, 0, 0, 900);


--
-- Data for Name: user_groups; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.user_groups VALUES (2, 1);
INSERT INTO public.user_groups VALUES (4, 1);
INSERT INTO public.user_groups VALUES (5, 1);


--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.users VALUES (1, '6756cc42d60f4bb09371e12840140b72', 'alice', 'Alice Patient', 'alice@patients.example', true, 'pbkdf2:sha256:1000$9BV52vwMA7V3q32B$83a89debcfb4f4d2b67c78c5eb70d31f179096617d2690d0f68fe374d01ae43c', false, '2026-12-02 17:34:15.454874+00');
INSERT INTO public.users VALUES (2, '20aad714afec42f585496e5c9b4ff42f', 'bob', 'Dr. Bob Surgeon', 'bob@surgery.example', true, 'pbkdf2:sha256:1000$3e6n13gbGpGrHUi9$f47969e196aa687c30020ee9b2cc88c64b2ab8544611013e9bdff14f84c3150f', false, '2026-12-02 17:34:15.457642+00');
INSERT INTO public.users VALUES (3, 'ee4bf08682fc4a2bb098bfc3362a3ed3', 'carol', 'Dr. Carol Physician', 'carol@clinic.example', true, 'pbkdf2:sha256:1000$y8ON4o02OpqG8q35$b99f0dc3cfeae698c11730d3a5d60d541bf11a3e13f0631b5639df901f80aac1', false, '2026-12-02 17:34:15.467088+00');
INSERT INTO public.users VALUES (4, 'b2cae58169bf40c58b33994b6c00f70b', 'dave', 'Dave Nurse', 'dave@surgery.example', true, 'pbkdf2:sha256:1000$VdjW2ZRe4NKnSjLP$4ffd2d6ff34880de2e9d14ba92ab08c0dfa2b1a847b8229b4b15498ddde9888a', false, '2026-12-02 17:34:15.468741+00');
INSERT INTO public.users VALUES (5, '23e77374292541afb3953b1e3ce1cb73', 'erin', 'Erin Operations', 'erin@surgery.example', true, 'pbkdf2:sha256:1000$F2xKOwGdvSdP9x1C$ae0917743aa89fbff5e0db52b718c91fa3461e9862afc5f1dd13c04d1b2ace9c', false, '2026-12-02 17:34:15.471936+00');
INSERT INTO public.users VALUES (6, 'd193868189654e33ba5de5278d5fc273', 'mallory', 'Mallory Stranger', 'mallory@elsewhere.example', true, 'pbkdf2:sha256:1000$cSGrlpNsMtu52yAz$a394208f27594e3478ec8d36a0cda1aae7307830284c981d4c5c5644d9ba3d64', false, '2026-12-02 17:34:15.477487+00');


--
-- Name: access_requests_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.access_requests_id_seq', 1, true);


--
-- Name: audit_events_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.audit_events_id_seq', 2, true);


--
-- Name: authorization_codes_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.authorization_codes_id_seq', 2, true);


--
-- Name: authz_protocol_messages_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.authz_protocol_messages_id_seq', 1, false);


--
-- Name: clients_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.clients_id_seq', 2, true);


--
-- Name: doctor_pending_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.doctor_pending_id_seq', 1, false);


--
-- Name: doctor_people_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.doctor_people_id_seq', 1, true);


--
-- Name: doctor_protocol_messages_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.doctor_protocol_messages_id_seq', 1, false);


--
-- Name: doctor_visits_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.doctor_visits_id_seq', 1, true);


--
-- Name: doctor_wallets_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.doctor_wallets_id_seq', 1, false);


--
-- Name: ehr_access_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ehr_access_log_id_seq', 1, true);


--
-- Name: ehr_devices_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ehr_devices_id_seq', 1, true);


--
-- Name: ehr_entries_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ehr_entries_id_seq', 12, true);


--
-- Name: ehr_patients_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ehr_patients_id_seq', 1, true);


--
-- Name: ehr_protection_links_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ehr_protection_links_id_seq', 1, true);


--
-- Name: ehr_protocol_messages_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ehr_protocol_messages_id_seq', 1, false);


--
-- Name: ehr_readings_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ehr_readings_id_seq', 5, true);


--
-- Name: ehr_record_sets_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ehr_record_sets_id_seq', 3, true);


--
-- Name: groups_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.groups_id_seq', 1, true);


--
-- Name: pcts_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.pcts_id_seq', 1, false);


--
-- Name: permission_tickets_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.permission_tickets_id_seq', 4, true);


--
-- Name: policies_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.policies_id_seq', 1, true);


--
-- Name: rpts_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.rpts_id_seq', 1, false);


--
-- Name: tokens_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.tokens_id_seq', 2, true);


--
-- Name: users_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.users_id_seq', 6, true);


--
-- Name: access_requests access_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.access_requests
    ADD CONSTRAINT access_requests_pkey PRIMARY KEY (id);


--
-- Name: audit_events audit_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_events
    ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id);


--
-- Name: authorization_codes authorization_codes_code_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.authorization_codes
    ADD CONSTRAINT authorization_codes_code_key UNIQUE (code);


--
-- Name: authorization_codes authorization_codes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.authorization_codes
    ADD CONSTRAINT authorization_codes_pkey PRIMARY KEY (id);


--
-- Name: authz_flow_links authz_flow_links_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.authz_flow_links
    ADD CONSTRAINT authz_flow_links_pkey PRIMARY KEY (key_digest);


--
-- Name: authz_protocol_messages authz_protocol_messages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.authz_protocol_messages
    ADD CONSTRAINT authz_protocol_messages_pkey PRIMARY KEY (id);


--
-- Name: clients clients_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.clients
    ADD CONSTRAINT clients_pkey PRIMARY KEY (id);


--
-- Name: doctor_flow_links doctor_flow_links_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_flow_links
    ADD CONSTRAINT doctor_flow_links_pkey PRIMARY KEY (key_digest);


--
-- Name: doctor_flows doctor_flows_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_flows
    ADD CONSTRAINT doctor_flows_pkey PRIMARY KEY (id);


--
-- Name: doctor_pending doctor_pending_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_pending
    ADD CONSTRAINT doctor_pending_pkey PRIMARY KEY (id);


--
-- Name: doctor_pending doctor_pending_state_digest_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_pending
    ADD CONSTRAINT doctor_pending_state_digest_key UNIQUE (state_digest);


--
-- Name: doctor_people doctor_people_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_people
    ADD CONSTRAINT doctor_people_pkey PRIMARY KEY (id);


--
-- Name: doctor_people doctor_people_sub_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_people
    ADD CONSTRAINT doctor_people_sub_key UNIQUE (sub);


--
-- Name: doctor_protocol_messages doctor_protocol_messages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_protocol_messages
    ADD CONSTRAINT doctor_protocol_messages_pkey PRIMARY KEY (id);


--
-- Name: doctor_settings doctor_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_settings
    ADD CONSTRAINT doctor_settings_pkey PRIMARY KEY (name);


--
-- Name: doctor_visits doctor_visits_person_id_url_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_visits
    ADD CONSTRAINT doctor_visits_person_id_url_key UNIQUE (person_id, url);


--
-- Name: doctor_visits doctor_visits_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_visits
    ADD CONSTRAINT doctor_visits_pkey PRIMARY KEY (id);


--
-- Name: doctor_wallets doctor_wallets_person_id_as_uri_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_wallets
    ADD CONSTRAINT doctor_wallets_person_id_as_uri_key UNIQUE (person_id, as_uri);


--
-- Name: doctor_wallets doctor_wallets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_wallets
    ADD CONSTRAINT doctor_wallets_pkey PRIMARY KEY (id);


--
-- Name: ehr_access_log ehr_access_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_access_log
    ADD CONSTRAINT ehr_access_log_pkey PRIMARY KEY (id);


--
-- Name: ehr_devices ehr_devices_device_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_devices
    ADD CONSTRAINT ehr_devices_device_id_key UNIQUE (device_id);


--
-- Name: ehr_devices ehr_devices_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_devices
    ADD CONSTRAINT ehr_devices_pkey PRIMARY KEY (id);


--
-- Name: ehr_devices ehr_devices_uma_resource_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_devices
    ADD CONSTRAINT ehr_devices_uma_resource_id_key UNIQUE (uma_resource_id);


--
-- Name: ehr_entries ehr_entries_fhir_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_entries
    ADD CONSTRAINT ehr_entries_fhir_id_key UNIQUE (fhir_id);


--
-- Name: ehr_entries ehr_entries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_entries
    ADD CONSTRAINT ehr_entries_pkey PRIMARY KEY (id);


--
-- Name: ehr_flow_links ehr_flow_links_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_flow_links
    ADD CONSTRAINT ehr_flow_links_pkey PRIMARY KEY (key_digest);


--
-- Name: ehr_introspection_cache ehr_introspection_cache_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_introspection_cache
    ADD CONSTRAINT ehr_introspection_cache_pkey PRIMARY KEY (token_digest, patient_id);


--
-- Name: ehr_patients ehr_patients_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_patients
    ADD CONSTRAINT ehr_patients_pkey PRIMARY KEY (id);


--
-- Name: ehr_patients ehr_patients_sub_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_patients
    ADD CONSTRAINT ehr_patients_sub_key UNIQUE (sub);


--
-- Name: ehr_patients ehr_patients_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_patients
    ADD CONSTRAINT ehr_patients_username_key UNIQUE (username);


--
-- Name: ehr_protection_links ehr_protection_links_patient_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_protection_links
    ADD CONSTRAINT ehr_protection_links_patient_id_key UNIQUE (patient_id);


--
-- Name: ehr_protection_links ehr_protection_links_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_protection_links
    ADD CONSTRAINT ehr_protection_links_pkey PRIMARY KEY (id);


--
-- Name: ehr_protocol_messages ehr_protocol_messages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_protocol_messages
    ADD CONSTRAINT ehr_protocol_messages_pkey PRIMARY KEY (id);


--
-- Name: ehr_readings ehr_readings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_readings
    ADD CONSTRAINT ehr_readings_pkey PRIMARY KEY (id);


--
-- Name: ehr_record_sets ehr_record_sets_patient_id_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_record_sets
    ADD CONSTRAINT ehr_record_sets_patient_id_name_key UNIQUE (patient_id, name);


--
-- Name: ehr_record_sets ehr_record_sets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_record_sets
    ADD CONSTRAINT ehr_record_sets_pkey PRIMARY KEY (id);


--
-- Name: ehr_record_sets ehr_record_sets_uma_resource_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_record_sets
    ADD CONSTRAINT ehr_record_sets_uma_resource_id_key UNIQUE (uma_resource_id);


--
-- Name: ehr_settings ehr_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_settings
    ADD CONSTRAINT ehr_settings_pkey PRIMARY KEY (name);


--
-- Name: groups groups_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.groups
    ADD CONSTRAINT groups_name_key UNIQUE (name);


--
-- Name: groups groups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.groups
    ADD CONSTRAINT groups_pkey PRIMARY KEY (id);


--
-- Name: pcts pcts_digest_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pcts
    ADD CONSTRAINT pcts_digest_key UNIQUE (digest);


--
-- Name: pcts pcts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pcts
    ADD CONSTRAINT pcts_pkey PRIMARY KEY (id);


--
-- Name: permission_tickets permission_tickets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.permission_tickets
    ADD CONSTRAINT permission_tickets_pkey PRIMARY KEY (id);


--
-- Name: permission_tickets permission_tickets_ticket_digest_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.permission_tickets
    ADD CONSTRAINT permission_tickets_ticket_digest_key UNIQUE (ticket_digest);


--
-- Name: policies policies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_pkey PRIMARY KEY (id);


--
-- Name: policy_resources policy_resources_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policy_resources
    ADD CONSTRAINT policy_resources_pkey PRIMARY KEY (policy_id, resource_id);


--
-- Name: resources resources_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT resources_pkey PRIMARY KEY (id);


--
-- Name: rpts rpts_digest_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rpts
    ADD CONSTRAINT rpts_digest_key UNIQUE (digest);


--
-- Name: rpts rpts_jti_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rpts
    ADD CONSTRAINT rpts_jti_key UNIQUE (jti);


--
-- Name: rpts rpts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rpts
    ADD CONSTRAINT rpts_pkey PRIMARY KEY (id);


--
-- Name: settings settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.settings
    ADD CONSTRAINT settings_pkey PRIMARY KEY (name);


--
-- Name: signing_keys signing_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.signing_keys
    ADD CONSTRAINT signing_keys_pkey PRIMARY KEY (kid);


--
-- Name: tokens tokens_access_token_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_access_token_key UNIQUE (access_token);


--
-- Name: tokens tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_pkey PRIMARY KEY (id);


--
-- Name: ehr_readings uq_ehr_readings_device_seq; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_readings
    ADD CONSTRAINT uq_ehr_readings_device_seq UNIQUE (device_pk, seq);


--
-- Name: user_groups user_groups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_groups
    ADD CONSTRAINT user_groups_pkey PRIMARY KEY (user_id, group_id);


--
-- Name: users users_email_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_email_key UNIQUE (email);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: users users_sub_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_sub_key UNIQUE (sub);


--
-- Name: users users_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_username_key UNIQUE (username);


--
-- Name: ix_access_requests_lookup; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_access_requests_lookup ON public.access_requests USING btree (requester_id, resource_id, status);


--
-- Name: ix_access_requests_owner; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_access_requests_owner ON public.access_requests USING btree (owner_id, status);


--
-- Name: ix_audit_owner_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_audit_owner_at ON public.audit_events USING btree (owner_id, at);


--
-- Name: ix_authz_flow_links_recorded_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_authz_flow_links_recorded_at ON public.authz_flow_links USING btree (recorded_at);


--
-- Name: ix_authz_protocol_messages_flow_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_authz_protocol_messages_flow_id ON public.authz_protocol_messages USING btree (flow_id);


--
-- Name: ix_authz_protocol_messages_recorded_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_authz_protocol_messages_recorded_at ON public.authz_protocol_messages USING btree (recorded_at);


--
-- Name: ix_clients_client_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_clients_client_id ON public.clients USING btree (client_id);


--
-- Name: ix_doctor_flow_links_recorded_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_doctor_flow_links_recorded_at ON public.doctor_flow_links USING btree (recorded_at);


--
-- Name: ix_doctor_flows_person; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_doctor_flows_person ON public.doctor_flows USING btree (person_id, started_at);


--
-- Name: ix_doctor_pending_person; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_doctor_pending_person ON public.doctor_pending USING btree (person_id, created_at);


--
-- Name: ix_doctor_protocol_messages_flow_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_doctor_protocol_messages_flow_id ON public.doctor_protocol_messages USING btree (flow_id);


--
-- Name: ix_doctor_protocol_messages_recorded_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_doctor_protocol_messages_recorded_at ON public.doctor_protocol_messages USING btree (recorded_at);


--
-- Name: ix_ehr_access_log_patient_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ehr_access_log_patient_at ON public.ehr_access_log USING btree (patient_id, at);


--
-- Name: ix_ehr_entries_record_set; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ehr_entries_record_set ON public.ehr_entries USING btree (record_set_id, id);


--
-- Name: ix_ehr_flow_links_recorded_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ehr_flow_links_recorded_at ON public.ehr_flow_links USING btree (recorded_at);


--
-- Name: ix_ehr_introspection_cache_expires_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ehr_introspection_cache_expires_at ON public.ehr_introspection_cache USING btree (expires_at);


--
-- Name: ix_ehr_protocol_messages_flow_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ehr_protocol_messages_flow_id ON public.ehr_protocol_messages USING btree (flow_id);


--
-- Name: ix_ehr_protocol_messages_recorded_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ehr_protocol_messages_recorded_at ON public.ehr_protocol_messages USING btree (recorded_at);


--
-- Name: ix_ehr_readings_device_measured; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ehr_readings_device_measured ON public.ehr_readings USING btree (device_pk, measured_at);


--
-- Name: ix_permission_tickets_previous; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_permission_tickets_previous ON public.permission_tickets USING btree (previous_id) WHERE (previous_id IS NOT NULL);


--
-- Name: ix_policies_owner_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_policies_owner_id ON public.policies USING btree (owner_id);


--
-- Name: ix_policy_resources_resource; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_policy_resources_resource ON public.policy_resources USING btree (resource_id, policy_id);


--
-- Name: ix_resources_owner_client; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_resources_owner_client ON public.resources USING btree (owner_id, client_pk);


--
-- Name: ix_rpts_ticket_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_rpts_ticket_id ON public.rpts USING btree (ticket_id);


--
-- Name: ix_tokens_refresh_token; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_tokens_refresh_token ON public.tokens USING btree (refresh_token);


--
-- Name: uq_clients_client_id; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX uq_clients_client_id ON public.clients USING btree (client_id);


--
-- Name: access_requests access_requests_client_pk_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.access_requests
    ADD CONSTRAINT access_requests_client_pk_fkey FOREIGN KEY (client_pk) REFERENCES public.clients(id) ON DELETE CASCADE;


--
-- Name: access_requests access_requests_owner_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.access_requests
    ADD CONSTRAINT access_requests_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: access_requests access_requests_requester_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.access_requests
    ADD CONSTRAINT access_requests_requester_id_fkey FOREIGN KEY (requester_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: access_requests access_requests_resource_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.access_requests
    ADD CONSTRAINT access_requests_resource_id_fkey FOREIGN KEY (resource_id) REFERENCES public.resources(id) ON DELETE CASCADE;


--
-- Name: audit_events audit_events_owner_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_events
    ADD CONSTRAINT audit_events_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: authorization_codes authorization_codes_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.authorization_codes
    ADD CONSTRAINT authorization_codes_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: clients clients_service_account_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.clients
    ADD CONSTRAINT clients_service_account_id_fkey FOREIGN KEY (service_account_id) REFERENCES public.users(id) ON DELETE SET NULL;


--
-- Name: doctor_flows doctor_flows_person_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_flows
    ADD CONSTRAINT doctor_flows_person_id_fkey FOREIGN KEY (person_id) REFERENCES public.doctor_people(id) ON DELETE CASCADE;


--
-- Name: doctor_pending doctor_pending_person_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_pending
    ADD CONSTRAINT doctor_pending_person_id_fkey FOREIGN KEY (person_id) REFERENCES public.doctor_people(id) ON DELETE CASCADE;


--
-- Name: doctor_visits doctor_visits_person_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_visits
    ADD CONSTRAINT doctor_visits_person_id_fkey FOREIGN KEY (person_id) REFERENCES public.doctor_people(id) ON DELETE CASCADE;


--
-- Name: doctor_wallets doctor_wallets_person_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.doctor_wallets
    ADD CONSTRAINT doctor_wallets_person_id_fkey FOREIGN KEY (person_id) REFERENCES public.doctor_people(id) ON DELETE CASCADE;


--
-- Name: ehr_access_log ehr_access_log_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_access_log
    ADD CONSTRAINT ehr_access_log_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.ehr_patients(id) ON DELETE CASCADE;


--
-- Name: ehr_devices ehr_devices_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_devices
    ADD CONSTRAINT ehr_devices_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.ehr_patients(id) ON DELETE CASCADE;


--
-- Name: ehr_entries ehr_entries_record_set_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_entries
    ADD CONSTRAINT ehr_entries_record_set_id_fkey FOREIGN KEY (record_set_id) REFERENCES public.ehr_record_sets(id) ON DELETE CASCADE;


--
-- Name: ehr_introspection_cache ehr_introspection_cache_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_introspection_cache
    ADD CONSTRAINT ehr_introspection_cache_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.ehr_patients(id) ON DELETE CASCADE;


--
-- Name: ehr_protection_links ehr_protection_links_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_protection_links
    ADD CONSTRAINT ehr_protection_links_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.ehr_patients(id) ON DELETE CASCADE;


--
-- Name: ehr_readings ehr_readings_device_pk_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_readings
    ADD CONSTRAINT ehr_readings_device_pk_fkey FOREIGN KEY (device_pk) REFERENCES public.ehr_devices(id) ON DELETE CASCADE;


--
-- Name: ehr_record_sets ehr_record_sets_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ehr_record_sets
    ADD CONSTRAINT ehr_record_sets_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.ehr_patients(id) ON DELETE CASCADE;


--
-- Name: pcts pcts_client_pk_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pcts
    ADD CONSTRAINT pcts_client_pk_fkey FOREIGN KEY (client_pk) REFERENCES public.clients(id) ON DELETE CASCADE;


--
-- Name: pcts pcts_requester_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pcts
    ADD CONSTRAINT pcts_requester_id_fkey FOREIGN KEY (requester_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: permission_tickets permission_tickets_bound_client_pk_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.permission_tickets
    ADD CONSTRAINT permission_tickets_bound_client_pk_fkey FOREIGN KEY (bound_client_pk) REFERENCES public.clients(id) ON DELETE CASCADE;


--
-- Name: permission_tickets permission_tickets_client_pk_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.permission_tickets
    ADD CONSTRAINT permission_tickets_client_pk_fkey FOREIGN KEY (client_pk) REFERENCES public.clients(id) ON DELETE CASCADE;


--
-- Name: permission_tickets permission_tickets_owner_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.permission_tickets
    ADD CONSTRAINT permission_tickets_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: permission_tickets permission_tickets_previous_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.permission_tickets
    ADD CONSTRAINT permission_tickets_previous_id_fkey FOREIGN KEY (previous_id) REFERENCES public.permission_tickets(id) ON DELETE SET NULL;


--
-- Name: permission_tickets permission_tickets_requester_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.permission_tickets
    ADD CONSTRAINT permission_tickets_requester_id_fkey FOREIGN KEY (requester_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: policies policies_from_request_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_from_request_id_fkey FOREIGN KEY (from_request_id) REFERENCES public.access_requests(id) ON DELETE SET NULL;


--
-- Name: policies policies_owner_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: policies policies_subject_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_subject_group_id_fkey FOREIGN KEY (subject_group_id) REFERENCES public.groups(id) ON DELETE CASCADE;


--
-- Name: policies policies_subject_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_subject_user_id_fkey FOREIGN KEY (subject_user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: policy_resources policy_resources_policy_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policy_resources
    ADD CONSTRAINT policy_resources_policy_id_fkey FOREIGN KEY (policy_id) REFERENCES public.policies(id) ON DELETE CASCADE;


--
-- Name: policy_resources policy_resources_resource_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.policy_resources
    ADD CONSTRAINT policy_resources_resource_id_fkey FOREIGN KEY (resource_id) REFERENCES public.resources(id) ON DELETE CASCADE;


--
-- Name: resources resources_client_pk_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT resources_client_pk_fkey FOREIGN KEY (client_pk) REFERENCES public.clients(id) ON DELETE CASCADE;


--
-- Name: resources resources_owner_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.resources
    ADD CONSTRAINT resources_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: rpts rpts_client_pk_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rpts
    ADD CONSTRAINT rpts_client_pk_fkey FOREIGN KEY (client_pk) REFERENCES public.clients(id) ON DELETE CASCADE;


--
-- Name: rpts rpts_requester_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rpts
    ADD CONSTRAINT rpts_requester_id_fkey FOREIGN KEY (requester_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: rpts rpts_ticket_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rpts
    ADD CONSTRAINT rpts_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES public.permission_tickets(id) ON DELETE SET NULL;


--
-- Name: tokens tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: user_groups user_groups_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_groups
    ADD CONSTRAINT user_groups_group_id_fkey FOREIGN KEY (group_id) REFERENCES public.groups(id) ON DELETE CASCADE;


--
-- Name: user_groups user_groups_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_groups
    ADD CONSTRAINT user_groups_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


