-- medpro clinic migration 012: document rules (items and totals, gapless
-- numbering when issued, immutable issued documents, credit notes)
--
-- A document is issued when its status leaves draft (inserted as sent or
-- paid, or updated to it).  It then gets, in the same transaction, the next
-- number of its (type, year) counter row: the counter row stays locked until
-- commit and a rollback gives the number back, so numbers have no gaps and
-- no duplicates however many writers there are.  Items are checked and
-- totals computed here on every write; whatever totals a client sends are
-- replaced.  An issued document never changes and is never deleted; an
-- invoice is cancelled by credit notes that reference it and add up to its
-- total.

ALTER TABLE medpro_settings
    ADD COLUMN document_number_digits integer NOT NULL DEFAULT 6
        CONSTRAINT medpro_settings_document_number_digits_check
        CHECK (document_number_digits BETWEEN 1 AND 12),
    ADD CONSTRAINT medpro_settings_document_prefixes_values_check
        CHECK (document_prefixes ?& ARRAY['invoice', 'quote', 'credit_note']
               AND (document_prefixes ->> 'invoice') ~ '^[A-Za-z0-9_/]{1,16}$'
               AND (document_prefixes ->> 'quote') ~ '^[A-Za-z0-9_/]{1,16}$'
               AND (document_prefixes ->> 'credit_note') ~ '^[A-Za-z0-9_/]{1,16}$'),
    -- Each type is its own series: equal prefixes would give an invoice and
    -- a credit note the same number.
    ADD CONSTRAINT medpro_settings_document_prefixes_distinct_check
        CHECK ((document_prefixes ->> 'invoice') <> (document_prefixes ->> 'quote')
               AND (document_prefixes ->> 'invoice') <> (document_prefixes ->> 'credit_note')
               AND (document_prefixes ->> 'quote') <> (document_prefixes ->> 'credit_note'));

COMMENT ON COLUMN medpro_settings.document_number_digits IS
    'Minimum digits of the sequence part of a document number (6: FAC-2026-000001); longer numbers are never cut.';

CREATE TABLE medpro_document_counters (
    document_type text        NOT NULL
                  CONSTRAINT medpro_document_counters_document_type_check
                  CHECK (document_type IN ('quote', 'invoice', 'credit_note')),
    year          integer     NOT NULL
                  CONSTRAINT medpro_document_counters_year_check CHECK (year BETWEEN 1900 AND 9999),
    last_value    bigint      NOT NULL
                  CONSTRAINT medpro_document_counters_last_value_check CHECK (last_value >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_type, year)
);

COMMENT ON TABLE medpro_document_counters IS
    'Last document number issued per type and year (the database is one clinic''s, so this is per clinic, type and year).';

-- The counters move only under the numbering trigger (a trigger-depth of
-- 2: documents_rules writes them); a direct INSERT, UPDATE, DELETE or
-- TRUNCATE, which would leave a gap or hand out a number twice, is refused.
CREATE FUNCTION medpro_document_counters_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF pg_catalog.pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'document counters change only when a document is issued'
            USING ERRCODE = '55000',
                  HINT = 'Issue the document; its number comes from the counter in the same transaction.';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION medpro_document_counters_guard() IS
    'BEFORE INSERT/UPDATE/DELETE/TRUNCATE trigger on medpro_document_counters: only the numbering in documents_rules may change them (55000 otherwise).';

CREATE TRIGGER medpro_document_counters_guard
    BEFORE INSERT OR UPDATE OR DELETE ON medpro_document_counters
    FOR EACH ROW EXECUTE FUNCTION medpro_document_counters_guard();

CREATE TRIGGER medpro_document_counters_no_truncate
    BEFORE TRUNCATE ON medpro_document_counters
    FOR EACH STATEMENT EXECUTE FUNCTION medpro_document_counters_guard();

ALTER TABLE documents
    ADD CONSTRAINT documents_number_when_issued_check
        CHECK ((status = 'draft') = (document_number IS NULL)),
    ADD CONSTRAINT documents_credit_note_invoice_check
        CHECK (document_type <> 'credit_note' OR credit_for_id IS NOT NULL);

-- medpro_document_items(items): the checked and completed lines, and totals.
-- Each line is an object with only these keys: product_service_id (uuid of a
-- live product or service; a deleted one only in a line with its own
-- unit_price), description (a string), quantity (> 0), unit_price (>= 0),
-- tax_rate (0..100), is_medical (boolean); and subtotal, tax_amount, total,
-- vat_exempt, which are recomputed.  From a product come the missing
-- description, unit_price, tax_rate and is_medical.  A medical line of a
-- clinic whose medical acts are VAT-exempt defaults to rate 0 (vat_exempt).
-- Lines and totals are rounded to cents: a line's subtotal is
-- round(quantity * unit_price, 2), its tax round(subtotal * rate / 100, 2),
-- the document's subtotal and tax the sums, its total their sum.
-- Bad lines raise 22023.  Returns {items, subtotal, tax_amount, total, exempt}.
CREATE FUNCTION medpro_document_items(items jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_settings public.medpro_settings;
    v_line jsonb;
    v_i integer := 0;
    v_key text;
    v_product public.product_services;
    v_quantity numeric;
    v_price numeric;
    v_rate numeric;
    v_medical boolean;
    v_exempt boolean;
    v_sub numeric;
    v_tax numeric;
    v_out jsonb := '[]';
    v_subtotal numeric := 0;
    v_tax_amount numeric := 0;
    v_any_exempt boolean := false;
BEGIN
    IF items IS NULL OR jsonb_typeof(items) <> 'array' THEN
        RAISE EXCEPTION 'items must be a JSON array' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_settings FROM public.medpro_settings AS s WHERE s.id;
    FOR v_line IN SELECT e FROM jsonb_array_elements(items) AS e LOOP
        v_i := v_i + 1;
        IF jsonb_typeof(v_line) <> 'object' THEN
            RAISE EXCEPTION 'item % must be a JSON object', v_i USING ERRCODE = '22023';
        END IF;
        FOR v_key IN SELECT jsonb_object_keys(v_line) LOOP
            IF v_key NOT IN ('product_service_id', 'description', 'quantity', 'unit_price', 'tax_rate',
                             'is_medical', 'vat_exempt', 'subtotal', 'tax_amount', 'total') THEN
                RAISE EXCEPTION 'item %: unknown field "%"', v_i, left(v_key, 64) USING ERRCODE = '22023',
                    HINT = 'Item fields are product_service_id, description, quantity, unit_price, tax_rate and is_medical.';
            END IF;
        END LOOP;

        v_product := NULL;
        IF v_line ? 'product_service_id' AND jsonb_typeof(v_line -> 'product_service_id') <> 'null' THEN
            IF jsonb_typeof(v_line -> 'product_service_id') <> 'string'
               OR (v_line ->> 'product_service_id') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
                RAISE EXCEPTION 'item %: product_service_id must be a uuid', v_i USING ERRCODE = '22023';
            END IF;
            -- A product since deleted may still be named by a line that
            -- carries its own price: a credit note copying its invoice.
            SELECT * INTO v_product FROM public.product_services AS ps
             WHERE ps.id = (v_line ->> 'product_service_id')::uuid
               AND (ps.deleted_at IS NULL OR jsonb_typeof(v_line -> 'unit_price') = 'number');
            IF NOT FOUND THEN
                RAISE EXCEPTION 'item %: product or service does not exist', v_i USING ERRCODE = '22023';
            END IF;
        END IF;

        IF jsonb_typeof(v_line -> 'quantity') IS DISTINCT FROM 'number' THEN
            RAISE EXCEPTION 'item %: quantity must be a number', v_i USING ERRCODE = '22023';
        END IF;
        v_quantity := (v_line ->> 'quantity')::numeric;
        IF v_quantity <= 0 OR v_quantity >= 100000000 THEN
            RAISE EXCEPTION 'item %: quantity must be positive and below 100000000', v_i USING ERRCODE = '22023';
        END IF;

        IF v_line ? 'unit_price' AND jsonb_typeof(v_line -> 'unit_price') <> 'null' THEN
            IF jsonb_typeof(v_line -> 'unit_price') <> 'number' THEN
                RAISE EXCEPTION 'item %: unit_price must be a number', v_i USING ERRCODE = '22023';
            END IF;
            v_price := (v_line ->> 'unit_price')::numeric;
        ELSIF v_product.id IS NOT NULL THEN
            v_price := v_product.price;
        ELSE
            RAISE EXCEPTION 'item %: unit_price is required without a product or service', v_i USING ERRCODE = '22023';
        END IF;
        IF v_price < 0 OR v_price >= 10000000000 THEN
            RAISE EXCEPTION 'item %: unit_price must be between 0 and 9999999999.99', v_i USING ERRCODE = '22023';
        END IF;

        IF v_line ? 'is_medical' AND jsonb_typeof(v_line -> 'is_medical') <> 'null' THEN
            IF jsonb_typeof(v_line -> 'is_medical') <> 'boolean' THEN
                RAISE EXCEPTION 'item %: is_medical must be a boolean', v_i USING ERRCODE = '22023';
            END IF;
            v_medical := (v_line ->> 'is_medical')::boolean;
        ELSE
            v_medical := coalesce(v_product.is_medical, true);
        END IF;

        IF v_line ? 'tax_rate' AND jsonb_typeof(v_line -> 'tax_rate') <> 'null' THEN
            IF jsonb_typeof(v_line -> 'tax_rate') <> 'number' THEN
                RAISE EXCEPTION 'item %: tax_rate must be a number', v_i USING ERRCODE = '22023';
            END IF;
            v_rate := (v_line ->> 'tax_rate')::numeric;
        ELSIF v_medical AND v_settings.medical_vat_exempt THEN
            v_rate := 0;
        ELSE
            v_rate := coalesce(v_product.tax_rate, v_settings.default_tax_rate);
        END IF;
        IF v_rate < 0 OR v_rate > 100 THEN
            RAISE EXCEPTION 'item %: tax_rate must be between 0 and 100', v_i USING ERRCODE = '22023';
        END IF;
        v_exempt := v_medical AND v_settings.medical_vat_exempt AND v_rate = 0;
        v_any_exempt := v_any_exempt OR v_exempt;

        IF jsonb_typeof(v_line -> 'description') NOT IN ('string', 'null') THEN
            RAISE EXCEPTION 'item %: description must be a string', v_i USING ERRCODE = '22023';
        END IF;
        IF coalesce(v_line ->> 'description', v_product.name) IS NULL
           OR btrim(coalesce(v_line ->> 'description', v_product.name)) = '' THEN
            RAISE EXCEPTION 'item %: description is required without a product or service', v_i USING ERRCODE = '22023';
        END IF;

        v_sub := round(v_quantity * v_price, 2);
        v_tax := round(v_sub * v_rate / 100, 2);
        v_subtotal := v_subtotal + v_sub;
        v_tax_amount := v_tax_amount + v_tax;
        v_out := v_out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'product_service_id', v_product.id,
            'description', coalesce(v_line ->> 'description', v_product.name),
            'quantity', v_quantity,
            'unit_price', v_price,
            'tax_rate', v_rate,
            'is_medical', v_medical,
            'vat_exempt', v_exempt,
            'subtotal', v_sub,
            'tax_amount', v_tax,
            'total', v_sub + v_tax)));
    END LOOP;
    IF v_subtotal + v_tax_amount >= 10000000000 THEN
        RAISE EXCEPTION 'document total must be below 10000000000' USING ERRCODE = '22023';
    END IF;
    RETURN jsonb_build_object('items', v_out, 'subtotal', v_subtotal, 'tax_amount', v_tax_amount,
                              'total', v_subtotal + v_tax_amount, 'exempt', v_any_exempt);
END
$$;

COMMENT ON FUNCTION medpro_document_items(jsonb) IS
    'Checks document lines (22023 for a bad one) and returns them completed and priced, with the totals rounded to cents: {items, subtotal, tax_amount, total, exempt}.';

-- The sum of the issued credit notes of an invoice.
CREATE FUNCTION medpro_invoice_credited(invoice uuid) RETURNS numeric
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT coalesce(sum(d.total), 0) FROM public.documents AS d
     WHERE d.credit_for_id = invoice AND d.document_type = 'credit_note'
       AND d.status <> 'draft' AND d.deleted_at IS NULL
$$;

COMMENT ON FUNCTION medpro_invoice_credited(uuid) IS
    'Total of the issued credit notes that reference an invoice.';

CREATE FUNCTION medpro_documents_rules() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_settings public.medpro_settings;
    v_priced jsonb;
    v_invoice public.documents;
    v_year integer;
    v_n bigint;
    v_prefix text;
    v_kind text := replace(NEW.document_type, '_', ' ');
BEGIN
    SELECT * INTO v_settings FROM public.medpro_settings AS s WHERE s.id;

    -- An issued document: only its status may move on.
    IF TG_OP = 'UPDATE' AND OLD.status <> 'draft' THEN
        IF (to_jsonb(NEW) - 'status' - 'updated_at') IS DISTINCT FROM (to_jsonb(OLD) - 'status' - 'updated_at') THEN
            IF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN
                RAISE EXCEPTION 'an issued % cannot be deleted', replace(OLD.document_type, '_', ' ')
                    USING ERRCODE = '55000',
                          HINT = CASE OLD.document_type
                                 WHEN 'invoice' THEN 'Issue a credit note (document_type credit_note, credit_for_id = this invoice) to cancel it.'
                                 WHEN 'quote' THEN 'Set its status to cancelled instead.'
                                 ELSE 'Issued credit notes are kept as they are.' END;
            END IF;
            RAISE EXCEPTION 'an issued % cannot be changed', replace(OLD.document_type, '_', ' ')
                USING ERRCODE = '55000',
                      HINT = CASE OLD.document_type
                             WHEN 'invoice' THEN 'Issue a credit note (document_type credit_note, credit_for_id = this invoice) to cancel or correct it.'
                             WHEN 'quote' THEN 'Cancel it and issue a new quote.'
                             ELSE 'Issued credit notes are kept as they are.' END;
        END IF;
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            IF NOT ((OLD.status = 'sent' AND NEW.status = 'paid')
                    OR (NEW.status = 'cancelled' AND OLD.document_type IN ('invoice', 'quote'))) THEN
                RAISE EXCEPTION 'an issued % cannot go from % to %', replace(OLD.document_type, '_', ' '), OLD.status, NEW.status
                    USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                          COLUMN = 'status', CONSTRAINT = 'documents_status_transition_check';
            END IF;
            IF NEW.status = 'cancelled' AND OLD.document_type = 'invoice'
               AND public.medpro_invoice_credited(OLD.id) < OLD.total THEN
                RAISE EXCEPTION 'an issued invoice is cancelled by a credit note'
                    USING ERRCODE = '55000',
                          HINT = 'Issue a credit note (document_type credit_note, credit_for_id = this invoice) for its total.';
            END IF;
        END IF;
        RETURN NEW;
    END IF;

    -- A draft (or a document being issued now).
    IF NEW.document_number IS NOT NULL THEN
        RAISE EXCEPTION 'document_number is assigned when the document is issued'
            USING ERRCODE = '22023', HINT = 'Leave document_number out; it is set when the status leaves draft.';
    END IF;
    IF NEW.status = 'cancelled' THEN
        RAISE EXCEPTION 'a draft is deleted, not cancelled'
            USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  COLUMN = 'status', CONSTRAINT = 'documents_status_transition_check';
    END IF;
    NEW.currency := coalesce(NEW.currency, v_settings.currency);
    NEW.issued_at := NULL;

    IF NEW.document_type = 'credit_note' AND NEW.credit_for_id IS NOT NULL THEN
        SELECT * INTO v_invoice FROM public.documents AS d
         WHERE d.id = NEW.credit_for_id AND d.deleted_at IS NULL
         FOR UPDATE;
        IF NOT FOUND OR v_invoice.document_type <> 'invoice' OR v_invoice.status NOT IN ('sent', 'paid') THEN
            RAISE EXCEPTION 'a credit note must reference an issued invoice'
                USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                      COLUMN = 'credit_for_id', CONSTRAINT = 'documents_credit_note_invoice_check';
        END IF;
        IF NEW.patient_id IS NULL THEN
            NEW.patient_id := v_invoice.patient_id;
        ELSIF NEW.patient_id <> v_invoice.patient_id THEN
            RAISE EXCEPTION 'a credit note is for the patient of its invoice'
                USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                      COLUMN = 'patient_id', CONSTRAINT = 'documents_credit_note_invoice_check';
        END IF;
        -- Without lines, a credit note credits the whole invoice.
        IF NEW.items IS NULL OR NEW.items = '[]'::jsonb THEN
            NEW.items := v_invoice.items;
        END IF;
    END IF;

    v_priced := public.medpro_document_items(NEW.items);
    NEW.items := v_priced -> 'items';
    NEW.subtotal := (v_priced ->> 'subtotal')::numeric;
    NEW.tax_amount := (v_priced ->> 'tax_amount')::numeric;
    NEW.total := (v_priced ->> 'total')::numeric;
    IF (v_priced ->> 'exempt')::boolean THEN
        -- The exemption mention is required on the document: a client's
        -- own mention is kept, and completed with it when it lacks it.
        IF nullif(btrim(NEW.legal_mention), '') IS NULL THEN
            NEW.legal_mention := v_settings.vat_exempt_mention;
        ELSIF v_settings.vat_exempt_mention IS NOT NULL
              AND strpos(NEW.legal_mention, v_settings.vat_exempt_mention) = 0 THEN
            NEW.legal_mention := NEW.legal_mention || E'\n' || v_settings.vat_exempt_mention;
        END IF;
    END IF;

    IF NEW.status = 'draft' THEN
        RETURN NEW;
    END IF;

    -- Issuing.
    IF jsonb_array_length(NEW.items) = 0 THEN
        RAISE EXCEPTION 'an issued document needs at least one item' USING ERRCODE = '22023';
    END IF;
    IF NEW.document_type = 'credit_note' AND v_invoice.id IS NOT NULL
       AND public.medpro_invoice_credited(v_invoice.id) + NEW.total > v_invoice.total THEN
        RAISE EXCEPTION 'credit notes would exceed the total of the invoice'
            USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  CONSTRAINT = 'documents_credit_note_total_check',
                  DETAIL = format('Invoice %s has %s left to credit.', v_invoice.document_number,
                                  v_invoice.total - public.medpro_invoice_credited(v_invoice.id));
    END IF;
    NEW.issue_date := (pg_catalog.now() AT TIME ZONE v_settings.timezone)::date;
    NEW.issued_at := pg_catalog.now();
    v_year := extract(year FROM NEW.issue_date)::integer;
    INSERT INTO public.medpro_document_counters AS c (document_type, year, last_value)
    VALUES (NEW.document_type, v_year, 1)
    ON CONFLICT (document_type, year)
        DO UPDATE SET last_value = c.last_value + 1, updated_at = pg_catalog.now()
    RETURNING c.last_value INTO v_n;
    v_prefix := v_settings.document_prefixes ->> NEW.document_type;
    NEW.document_number := v_prefix || '-' || v_year || '-'
        || CASE WHEN length(v_n::text) >= v_settings.document_number_digits THEN v_n::text
                ELSE lpad(v_n::text, v_settings.document_number_digits, '0') END;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION medpro_documents_rules() IS
    'BEFORE INSERT OR UPDATE trigger on documents: prices the items, numbers a document when it is issued (gapless per type and year), keeps issued documents unchanged (55000) and checks credit notes.';

CREATE TRIGGER documents_rules
    BEFORE INSERT OR UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION medpro_documents_rules();

-- Credit notes in full cancel their invoice.
CREATE FUNCTION medpro_documents_credit() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    UPDATE public.documents AS d SET status = 'cancelled'
     WHERE d.id = NEW.credit_for_id AND d.status <> 'cancelled'
       AND public.medpro_invoice_credited(d.id) >= d.total;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION medpro_documents_credit() IS
    'AFTER INSERT OR UPDATE trigger on documents: an invoice whose issued credit notes reach its total becomes cancelled.';

CREATE TRIGGER documents_credit
    AFTER INSERT OR UPDATE OF status ON documents
    FOR EACH ROW
    WHEN (NEW.document_type = 'credit_note' AND NEW.status <> 'draft')
    EXECUTE FUNCTION medpro_documents_credit();

-- Hard deletes of issued documents (soft deletes go through the UPDATE rule).
CREATE FUNCTION medpro_documents_no_delete() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF OLD.status <> 'draft' THEN
        RAISE EXCEPTION 'an issued % cannot be deleted', replace(OLD.document_type, '_', ' ')
            USING ERRCODE = '55000',
                  HINT = 'Issue a credit note (document_type credit_note, credit_for_id = this invoice) to cancel an invoice.';
    END IF;
    RETURN OLD;
END
$$;

COMMENT ON FUNCTION medpro_documents_no_delete() IS
    'BEFORE DELETE trigger on documents: an issued document is never deleted (55000).';

CREATE TRIGGER documents_no_delete
    BEFORE DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION medpro_documents_no_delete();

-- TRUNCATE skips row triggers: refuse it while any document is issued.
CREATE FUNCTION medpro_documents_no_truncate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.documents AS d WHERE d.status <> 'draft') THEN
        RAISE EXCEPTION 'issued documents cannot be deleted'
            USING ERRCODE = '55000',
                  HINT = 'Issue a credit note to cancel an invoice; delete drafts one by one.';
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION medpro_documents_no_truncate() IS
    'BEFORE TRUNCATE trigger on documents: refused while any document is issued (55000).';

CREATE TRIGGER documents_no_truncate
    BEFORE TRUNCATE ON documents
    FOR EACH STATEMENT EXECUTE FUNCTION medpro_documents_no_truncate();
