/// The three departments of the 一数一源 tests: public security (gongan) authoritative for
/// name and birth date, civil affairs (minzheng) for marital status, housing (zhujian)
/// reporting name and marital status too; their resources and the `person` subject.
public enum ThreeDepartments {
    public static func catalog(share: String) -> String {
        """
        [[resource]]
        code = "GA-RK-0001"
        name = "residents"
        provider = "gongan"
        share = "\(share)"
        key = ["id_number"]
        columns = ["id_number", "name", "birth_date"]

        [[resource]]
        code = "MZ-HY-0003"
        name = "marriages"
        provider = "minzheng"
        share = "\(share)"
        key = ["id_number"]
        columns = ["id_number", "marital_status"]

        [[resource]]
        code = "ZJ-FW-0001"
        name = "housing"
        provider = "zhujian"
        share = "\(share)"
        key = ["owner_id"]
        columns = ["owner_id", "owner_name", "marital_status"]

        [[subject]]
        code = "person"
        name = "自然人"
        key_kind = "citizen_id"

          [[subject.field]]
          name = "name"
          authority = "gongan"
          sources = ["GA-RK-0001.name", "ZJ-FW-0001.owner_name"]

          [[subject.field]]
          name = "birth_date"
          authority = "gongan"
          sources = ["GA-RK-0001.birth_date"]

          [[subject.field]]
          name = "marital_status"
          authority = "minzheng"
          sources = ["MZ-HY-0003.marital_status", "ZJ-FW-0001.marital_status"]
        """
    }
}
