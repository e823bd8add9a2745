-- medpro clinic migration 007: documents (quotes, invoices, credit notes)
--
-- Gapless numbering, totals computed from items and the immutability of issued
-- invoices come in later migrations.

CREATE TABLE documents (
    id              uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id      uuid          NOT NULL,
    document_type   text          NOT NULL
                    CONSTRAINT documents_document_type_check
                    CHECK (document_type IN ('quote', 'invoice', 'credit_note')),
    document_number text,
    patient_id      uuid          NOT NULL
                    CONSTRAINT documents_patient_id_fkey REFERENCES patients (id),
    appointment_id  uuid
                    CONSTRAINT documents_appointment_id_fkey REFERENCES appointments (id),
    credit_for_id   uuid
                    CONSTRAINT documents_credit_for_id_fkey REFERENCES documents (id),
    status          text          NOT NULL DEFAULT 'draft'
                    CONSTRAINT documents_status_check
                    CHECK (status IN ('draft', 'sent', 'paid', 'cancelled')),
    issue_date      date,
    due_date        date,
    items           jsonb         NOT NULL DEFAULT '[]'
                    CONSTRAINT documents_items_check CHECK (jsonb_typeof(items) = 'array'),
    subtotal        numeric(12,2) NOT NULL DEFAULT 0,
    tax_amount      numeric(12,2) NOT NULL DEFAULT 0,
    total           numeric(12,2) NOT NULL DEFAULT 0,
    currency        text          NOT NULL DEFAULT 'EUR'
                    CONSTRAINT documents_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    notes           text,
    legal_mention   text,
    issued_at       timestamptz,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    -- Only a credit note points at the document it cancels, and never at itself.
    CONSTRAINT documents_credit_for_check
        CHECK (credit_for_id IS NULL OR (document_type = 'credit_note' AND credit_for_id <> id))
);

COMMENT ON TABLE documents IS
    'Quotes, invoices and credit notes issued to patients (soft-deleted).';
COMMENT ON COLUMN documents.document_number IS
    'Number assigned when the document is issued, e.g. FAC-2026-000001; unique per type among non-deleted documents.';
COMMENT ON COLUMN documents.credit_for_id IS
    'For a credit note: the invoice it cancels.';
COMMENT ON COLUMN documents.items IS
    'JSON array of lines {product_service_id?, description, quantity, unit_price, tax_rate}.';
COMMENT ON COLUMN documents.subtotal IS
    'Sum of the lines excluding VAT.';
COMMENT ON COLUMN documents.tax_amount IS
    'VAT of the lines.';
COMMENT ON COLUMN documents.total IS
    'subtotal + tax_amount.';
COMMENT ON COLUMN documents.legal_mention IS
    'Legal mention printed on the document (e.g. the VAT exemption article).';
COMMENT ON COLUMN documents.issued_at IS
    'When the document left draft status.';

CREATE UNIQUE INDEX documents_document_number_key
    ON documents (document_type, document_number)
    WHERE deleted_at IS NULL AND document_number IS NOT NULL;

CREATE INDEX documents_patient_id_idx
    ON documents (patient_id);

CREATE INDEX documents_appointment_id_idx
    ON documents (appointment_id);

CREATE INDEX documents_credit_for_id_idx
    ON documents (credit_for_id);

CREATE TRIGGER documents_company
    BEFORE INSERT OR UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER documents_updated_at
    BEFORE UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();
