-- medpro clinic migration 006: appointment items

CREATE TABLE appointment_items (
    id                 uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id         uuid          NOT NULL,
    appointment_id     uuid          NOT NULL
                       CONSTRAINT appointment_items_appointment_id_fkey
                       REFERENCES appointments (id) ON DELETE CASCADE,
    product_service_id uuid
                       CONSTRAINT appointment_items_product_service_id_fkey
                       REFERENCES product_services (id),
    description        text,
    quantity           numeric(10,2) NOT NULL DEFAULT 1
                       CONSTRAINT appointment_items_quantity_check CHECK (quantity > 0),
    unit_price         numeric(12,2) NOT NULL
                       CONSTRAINT appointment_items_unit_price_check CHECK (unit_price >= 0),
    tax_rate           numeric(5,2)  NOT NULL DEFAULT 0
                       CONSTRAINT appointment_items_tax_rate_check CHECK (tax_rate >= 0 AND tax_rate <= 100),
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT appointment_items_product_or_description_check
        CHECK (product_service_id IS NOT NULL OR description IS NOT NULL)
);

COMMENT ON TABLE appointment_items IS
    'Products and services performed or sold during an appointment (deleted with it; not soft-deleted).';
COMMENT ON COLUMN appointment_items.product_service_id IS
    'Catalogue entry; may be NULL for a free-text line, which then needs a description.';
COMMENT ON COLUMN appointment_items.unit_price IS
    'Unit price excluding VAT at the time of the appointment.';
COMMENT ON COLUMN appointment_items.tax_rate IS
    'VAT rate in percent (0..100) at the time of the appointment.';

CREATE INDEX appointment_items_appointment_id_idx
    ON appointment_items (appointment_id);

CREATE INDEX appointment_items_product_service_id_idx
    ON appointment_items (product_service_id);

CREATE TRIGGER appointment_items_company
    BEFORE INSERT OR UPDATE ON appointment_items
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER appointment_items_updated_at
    BEFORE UPDATE ON appointment_items
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();
